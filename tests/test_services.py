"""The testcontainers path of tests/services.py, checked without a Docker engine.

No Docker engine runs in CI, so `TEST_SERVICES=containers` is never exercised there; these
tests build the containers without starting them (testcontainers' Docker client is replaced
by a stub) and check their configuration and the URLs the tests' processes would receive.
"""

from __future__ import annotations

import ast
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import testcontainers.core.container as tc_container
from psycopg.conninfo import conninfo_to_dict
from testcontainers.community.kafka import KafkaContainer
from testcontainers.core.version import ComparableVersion

from domain.settings import PROJECT_ROOT, Settings
from memestream.testing.environment import STORE_URL_SETTINGS, environment
from tests.services import ServiceContainers, build_containers, container_settings

DOCKER_HOST = "docker-host.invalid"
# URL-like settings that are not stores the test services provide.
NOT_STORES = {
    "analytics_worker_url": "the analytics worker's own web port, derived when unset",
    "backup_s3_endpoint_url": "pgBackRest's repository (memestream backup): read by the backup"
    " commands only, whose tests set it on their own HA rig",
}
CODE_DIRS = ("api", "streams", "sinks", "producers", "domain", "memestream", "loadgen")


class NoEngine:
    """Stands in for testcontainers' Docker client: constructing a container needs none."""

    def __init__(self, **kwargs: Any) -> None:
        pass


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> ServiceContainers:
    monkeypatch.setattr(tc_container, "DockerClient", NoEngine)
    return build_containers(settings)


def _fake_started(built: ServiceContainers) -> None:
    """Answer host and mapped ports as a started container would (port p -> 40000 + p)."""
    for container in built.all():
        container.get_container_host_ip = lambda: DOCKER_HOST  # type: ignore[method-assign]
        container.get_exposed_port = lambda port: 40000 + int(port)  # type: ignore[method-assign]


def test_imports_are_testcontainers_current_paths() -> None:
    """testcontainers 4.x moved the modules to `testcontainers.community.*`; the old
    `testcontainers.kafka`-style paths are shims that warn and may go away."""
    tree = ast.parse((PROJECT_ROOT / "tests" / "services.py").read_text())
    modules = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("testcont")
    ]
    assert modules
    for module in modules:
        assert module.startswith(("testcontainers.community.", "testcontainers.core.")), module


def test_kafka_runs_kraft_on_an_image_that_supports_it(built: ServiceContainers) -> None:
    kafka = built.kafka
    repo, _, tag = kafka.image.rpartition(":")
    # with_kraft() drives the Confluent image's /etc/confluent/docker scripts.
    assert repo.endswith("confluentinc/cp-kafka")
    assert ComparableVersion(tag) >= KafkaContainer.MIN_KRAFT_TAG
    assert kafka.kraft_enabled
    kafka.configure()  # what start() does first; needs no engine
    assert kafka.env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka.env["CLUSTER_ID"]
    assert "confluent/docker/configure" in kafka.boot_command
    assert kafka.env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_nats_runs_with_jetstream(built: ServiceContainers) -> None:
    assert built.nats._command == "-js"
    assert str(built.nats.client_port) in built.nats.ports


def test_every_port_the_urls_use_is_exposed(built: ServiceContainers) -> None:
    for container, port in [
        (built.kafka, built.kafka.port),
        (built.postgres, built.postgres.port),
        (built.redis, built.redis.port),
        (built.minio, built.minio.port),
        (built.clickhouse, 8123),
        (built.nats, built.nats.client_port),
        (built.registry, 8080),
    ]:
        assert str(port) in container.ports, (container.image, port)


def test_credentials_are_the_settings(built: ServiceContainers, settings: Settings) -> None:
    db = conninfo_to_dict(settings.database_url)
    pg = built.postgres
    assert (pg.username, pg.password, pg.dbname) == (db["user"], db["password"], db["dbname"])
    assert pg.driver == ""  # a plain postgresql:// URL, which psycopg takes
    minio = built.minio.env
    assert minio["MINIO_ROOT_USER"] == settings.s3_access_key
    assert minio["MINIO_ROOT_PASSWORD"] == settings.s3_secret_key
    assert minio["MINIO_REGION"] == settings.s3_region


def test_every_store_url_the_code_reads_is_exported() -> None:
    url_fields = [
        name
        for name in Settings.model_fields
        if name.endswith("_url") or name.endswith("_bootstrap_servers")
    ]
    sources = [
        path.read_text()
        for folder in CODE_DIRS
        for path in (PROJECT_ROOT / folder).rglob("*.py")
        if path != PROJECT_ROOT / "domain" / "settings.py"
    ]
    read = {name for name in url_fields if any(re.search(rf"\.{name}\b", text) for text in sources)}
    assert {"kafka_bootstrap_servers", "nats_url", "database_url"} <= read  # the scan works
    missing = read - set(STORE_URL_SETTINGS) - set(NOT_STORES)
    assert not missing, (
        f"read by the code but not in memestream/testing/environment.STORE_URL_SETTINGS: {missing}"
    )


def test_container_urls_reach_every_store(built: ServiceContainers, settings: Settings) -> None:
    _fake_started(built)
    ready = container_settings(settings, built)
    env = environment(ready)
    assert set(env) == {name.upper() for name in STORE_URL_SETTINGS}
    for name in STORE_URL_SETTINGS:
        assert DOCKER_HOST in env[name.upper()], f"{name} does not point at its container"

    assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"{DOCKER_HOST}:{40000 + built.kafka.port}"
    db = conninfo_to_dict(env["DATABASE_URL"])
    assert (db["host"], db["port"]) == (DOCKER_HOST, "45432")
    want = conninfo_to_dict(settings.database_url)
    assert (db["user"], db["password"], db["dbname"]) == (
        want["user"],
        want["password"],
        want["dbname"],
    )
    assert env["REDIS_URL"] == f"redis://{DOCKER_HOST}:46379/0"
    assert env["S3_ENDPOINT_URL"] == f"http://{DOCKER_HOST}:49000"
    clickhouse = urlsplit(env["CLICKHOUSE_URL"])
    assert (clickhouse.scheme, clickhouse.port) == ("http", 48123)
    assert (clickhouse.username, clickhouse.password) == (
        built.clickhouse.username,
        built.clickhouse.password,
    )
    assert env["NATS_URL"] == f"nats://{DOCKER_HOST}:44222"
    assert env["SCHEMA_REGISTRY_URL"] == f"http://{DOCKER_HOST}:48080/apis/ccompat/v7"


def test_a_child_process_reads_back_the_same_urls(
    built: ServiceContainers, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_started(built)
    ready = container_settings(settings, built)
    for key, value in environment(ready).items():
        monkeypatch.setenv(key, value)
    child = Settings(_env_file=None)  # type: ignore[call-arg]
    for name in STORE_URL_SETTINGS:
        assert getattr(child, name) == getattr(ready, name)
