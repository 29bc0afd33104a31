"""docker-compose.yml, the Dockerfile and the Prometheus/Grafana wiring, checked without Docker.

Why: no Docker engine runs here, so the stack is checked by reading it: every service is
health-checked or waits on conditions, every variable an app container gets is a setting with a
valid value, every URL points at a service and a port it listens on, the workers are exactly the
roles of producers/roles.py, and the published ports are the settings' defaults.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from domain.settings import Settings
from producers.roles import INFERENCE, ROLES, WORKER_ROLES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")
URL_FIELDS = {
    name.upper()
    for name, field in Settings.model_fields.items()
    if (name.endswith("_url") or name.endswith("_servers")) and field.default is not None
}


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def app_services() -> dict[str, dict[str, Any]]:
    """Services built from the project's Dockerfile."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def resolve(value: Any) -> str:
    """A compose value with `${VAR:-default}` interpolated to its default (the env is unset)."""

    def sub(match: re.Match[str]) -> str:
        if match.group(2) is None:
            raise AssertionError(f"{match.group(0)} has no default")
        return match.group(3)

    return INTERPOLATION.sub(sub, str(value))


def env(service: str) -> dict[str, str]:
    raw = services()[service].get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: resolve(v) for k, v in raw.items()}


def exposed(service: str) -> set[int]:
    svc = services()[service]
    ports = {int(p) for p in svc.get("expose", [])}
    ports |= {int(str(p).rsplit(":", 1)[1]) for p in svc.get("ports", [])}
    return ports


def test_compose_parses_with_the_expected_services() -> None:
    names = set(services())
    infra = {
        "kafka",
        "postgres",
        "redis",
        "minio",
        "minio-init",
        "clickhouse",
        "nats",
        "prometheus",
        "grafana",
    }
    assert infra <= names
    assert {"api", "migrate", "topics"} <= names
    assert set(compose()["volumes"]) >= {"kafka-data", "postgres-data", "clickhouse-data"}


def test_every_service_is_health_checked_or_waits_on_conditions() -> None:
    for name, svc in services().items():
        depends = svc.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a list"
        for target, spec in depends.items():
            condition = spec["condition"]
            assert target in services(), f"{name} depends on unknown {target}"
            if condition == "service_healthy":
                assert "healthcheck" in services()[target], f"{target} has no health check"
            elif condition == "service_completed_successfully":
                assert services()[target].get("restart") == "no", f"{target} is not one-shot"
            else:
                pytest.fail(f"{name} -> {target}: condition {condition!r}")
        one_shot = svc.get("restart") == "no"
        if one_shot:
            assert depends, f"{name}: a one-shot service waits for what it initialises"
        else:
            test = svc.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


def test_app_variables_are_settings_with_valid_values() -> None:
    for name in app_services():
        values = env(name)
        unknown = set(values) - SETTINGS_ENV
        assert not unknown, f"{name}: {unknown} are not domain.settings fields"
        raw = services()[name].get("environment") or {}
        for variable in INTERPOLATION.findall(yaml.safe_dump(raw)):
            assert variable[0] in SETTINGS_ENV, f"{name}: ${{{variable[0]}}}"
        Settings(_env_file=None, **{k.lower(): v for k, v in values.items()})


@pytest.mark.parametrize("service", ["api", *(f"worker-{r}" for r in WORKER_ROLES)])
def test_every_store_url_points_at_a_service_port(service: str) -> None:
    values = env(service)
    missing = URL_FIELDS - set(values)
    assert not missing, f"{service} lacks {missing}"
    for field in URL_FIELDS:
        for address in values[field].split(","):
            parts = urlsplit(address if "://" in address else f"kafka://{address}")
            assert parts.hostname in services(), f"{field}: {parts.hostname} is no service"
            assert parts.port in exposed(parts.hostname), f"{field}: port {parts.port}"


def test_credentials_and_names_agree_with_the_stores() -> None:
    values = env("api")
    pg = env("postgres")
    db = urlsplit(values["DATABASE_URL"])
    assert (db.username, db.password, db.path.lstrip("/")) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        pg["POSTGRES_DB"],
    )
    ch = env("clickhouse")
    chu = urlsplit(values["CLICKHOUSE_URL"])
    assert (chu.username, chu.password, chu.path.lstrip("/")) == (
        ch["CLICKHOUSE_USER"],
        ch["CLICKHOUSE_PASSWORD"],
        ch["CLICKHOUSE_DB"],
    )
    minio = env("minio")
    assert (values["S3_ACCESS_KEY"], values["S3_SECRET_KEY"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    init = " ".join(services()["minio-init"]["command"])
    assert f"local/{values['S3_BUCKET']}" in init
    assert minio["MINIO_ROOT_USER"] in init and minio["MINIO_ROOT_PASSWORD"] in init
    kafka = env("kafka")
    assert f"PLAINTEXT://{values['KAFKA_BOOTSTRAP_SERVERS']}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert "-js" in services()["nats"]["command"], "NATS runs with JetStream"


def test_published_ports_are_the_settings_defaults() -> None:
    default = {name: field.default for name, field in Settings.model_fields.items()}
    kafka_default = default["kafka_bootstrap_servers"]
    expected = {
        "kafka": int(kafka_default.rsplit(":", 1)[1]),
        "postgres": urlsplit(default["database_url"]).port,
        "redis": urlsplit(default["redis_url"]).port,
        "nats": urlsplit(default["nats_url"]).port,
        "minio": urlsplit(default["s3_endpoint_url"]).port,
        "schema-registry": urlsplit(default["schema_registry_url"]).port,
        "api": default["api_port"],
    }
    host_ports: list[int] = []
    for name, svc in services().items():
        for mapping in svc.get("ports", []):
            ip, host, container = str(mapping).split(":")
            assert ip == "127.0.0.1", f"{name} publishes on {ip}"
            assert int(container) in exposed(name)
            host_ports.append(int(host))
    assert len(host_ports) == len(set(host_ports)), "a host port is published twice"
    for name, port in expected.items():
        published = {int(str(p).split(":")[1]) for p in services()[name].get("ports", [])}
        assert port in published, f"{name} should publish the default port {port}"
    advertised = env("kafka")["KAFKA_ADVERTISED_LISTENERS"]
    assert f"HOST://{kafka_default}" in advertised


def test_workers_are_the_roles() -> None:
    workers = {
        n.removeprefix("worker-"): s for n, s in services().items() if n.startswith("worker-")
    }
    assert set(workers) == set(WORKER_ROLES)
    inference = workers[INFERENCE]
    assert inference["command"] == ["python", "-m", "streams", "worker", "--role", INFERENCE]
    port = int(env(f"worker-{INFERENCE}")["WORKER_WEB_PORT"]) + WORKER_ROLES.index(INFERENCE)
    assert port in exposed(f"worker-{INFERENCE}")
    assert f"{port}/health" in " ".join(inference["healthcheck"]["test"])
    for index, (role, svc) in enumerate(ROLES.items()):
        service = workers[role]
        assert service["command"] == ["python", "-m", "streams", "worker", "--role", role]
        port = int(env(f"worker-{role}")["WORKER_WEB_PORT"]) + index  # as streams/app.py does
        assert port in exposed(f"worker-{role}")
        assert str(port) in " ".join(service["healthcheck"]["test"])
        assert env(f"worker-{role}")["API_HOST"] == "0.0.0.0", "the web server must be reachable"
        assert svc.group_id == f"memestream-{role}"


def test_app_commands() -> None:
    # memestream/stack/apps.py's command line; host and port from the environment.
    assert services()["api"]["command"] == ["memestream", "api"]
    assert env("api")["API_HOST"] == "0.0.0.0" and env("api")["API_PORT"] == "8000"
    assert services()["migrate"]["command"] == ["memestream", "migrate"]
    assert services()["topics"]["command"] == ["memestream", "topics"]
    api_depends = services()["api"]["depends_on"]
    assert api_depends["migrate"]["condition"] == "service_completed_successfully"
    assert api_depends["topics"]["condition"] == "service_completed_successfully"
    assert "/health" in " ".join(services()["api"]["healthcheck"]["test"])


def test_prometheus_scrapes_the_api_and_every_worker() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    want = {f"api:{env('api')['API_PORT']}"}
    for index, role in enumerate(WORKER_ROLES):
        want.add(f"worker-{role}:{int(env(f'worker-{role}')['WORKER_WEB_PORT']) + index}")
    assert want <= targets
    for target in targets - {"localhost:9090"}:
        host, port = target.split(":")
        assert int(port) in exposed(host), target
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_bind_mounts_exist_and_grafana_is_provisioned() -> None:
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} missing"
    grafana = services()["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./dashboards/provisioning"
    provider = yaml.safe_load(
        (ROOT / "dashboards/provisioning/dashboards/dashboards.yaml").read_text()
    )
    assert mounts[provider["providers"][0]["options"]["path"]] == "./dashboards"
    genv = env("grafana")
    assert "grafana-clickhouse-datasource" in genv["GF_INSTALL_PLUGINS"]
    datasources = (ROOT / "dashboards/provisioning/datasources/datasources.yaml").read_text()
    for variable in INTERPOLATION.findall(datasources):
        assert variable[0] in genv, f"Grafana lacks {variable[0]}"
    assert urlsplit(genv["PROMETHEUS_URL"]).hostname == "prometheus"
    assert genv["CLICKHOUSE_HOST"] == "clickhouse" and 9000 in exposed("clickhouse")


def test_dockerfile_and_dockerignore() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    for font in ("fonts-dejavu-core", "fonts-noto-color-emoji", "fonts-noto-core"):
        assert font in dockerfile
    assert "pip install" in dockerfile and "USER app" in dockerfile
    entrypoint = ROOT / "deploy/docker/entrypoint.sh"
    assert entrypoint.exists() and os.access(entrypoint, os.X_OK)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".stack"} <= set(ignored)
    for kept in ("schemas", "templates", "pyproject.toml", "deploy/docker"):
        assert kept not in ignored, f"the image needs {kept}"
    for svc in app_services().values():
        assert svc["build"] == {"context": ".", "dockerfile": "Dockerfile"}


def test_kafka_is_the_local_stack_version() -> None:
    """Compose and `memestream stack` run the same broker, so a test on one holds on the other."""
    from memestream.stack.kafka import KAFKA_VERSION

    assert services()["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


def test_the_registry_is_the_local_stack_version_on_postgres() -> None:
    """Compose runs the Apicurio version `memestream stack` runs, with the same storage."""
    from memestream.stack.registry import APICURIO_VERSION, REGISTRY_DB_SCHEMA

    registry = services()["schema-registry"]
    assert registry["image"] == f"apicurio/apicurio-registry:{APICURIO_VERSION}"
    values = env("schema-registry")
    assert values["APICURIO_STORAGE_SQL_KIND"] == "postgresql"
    assert values["APICURIO_DATASOURCE_URL"].endswith(f"currentSchema={REGISTRY_DB_SCHEMA}")
    assert REGISTRY_DB_SCHEMA in " ".join(services()["registry-db"]["command"])
    assert services()["schemas"]["command"] == ["memestream", "schemas", "register"]
