"""deploy/stores: the replicated stores and the observability pieces, wired to what the apps use.

The operators' CRD schemas (CloudNativePG, redis-operator, MinIO Operator) are not among the
ones `../shared/crds` provides, and nothing foreign is committed, so the strict schema check of
those kinds runs where `MEMESTREAM_EXTRA_CRDS` names a folder holding them (deploy/README.md
says which files); everything else here always runs: the kinds, the kustomization, and the
names that must agree across files (Services the apps' URLs name, the Sentinel master group,
buckets, the collector's ports, the OTLP pipelines).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from domain.settings import Settings
from tests.test_manifests import strict

ROOT = Path(__file__).resolve().parent.parent
STORES = ROOT / "deploy" / "stores"
STRIMZI = ROOT / "deploy" / "strimzi"
EXTRA_CRDS = {
    ("postgresql.cnpg.io/v1", "Cluster"): "postgresql.cnpg.io_clusters.yaml",
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): "postgresql.cnpg.io_scheduledbackups.yaml",
    ("redis.redis.opstreelabs.in/v1beta2", "RedisReplication"): (
        "redis.redis.opstreelabs.in_redisreplications.yaml"
    ),
    ("redis.redis.opstreelabs.in/v1beta2", "RedisSentinel"): (
        "redis.redis.opstreelabs.in_redissentinels.yaml"
    ),
    ("minio.min.io/v2", "Tenant"): "minio.min.io_tenants.yaml",
}
BUILT_IN = {
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
}


@cache
def _documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    out = []
    for path in sorted(STORES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out.extend((path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return tuple(out)


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d
        for _, d in _documents()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (STRIMZI / "stores.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def config() -> dict[str, str]:
    return yaml.safe_load((STRIMZI / "config.yaml").read_text())["data"]


def test_every_kind_is_known_and_the_kustomization_lists_every_file() -> None:
    kinds = {(d["apiVersion"], d["kind"]) for _, d in _documents()}
    assert kinds <= BUILT_IN | set(EXTRA_CRDS), kinds - BUILT_IN - set(EXTRA_CRDS)
    assert set(EXTRA_CRDS) <= kinds, "PostgreSQL, Redis and MinIO each run by their operator"
    kustomization = yaml.safe_load((STORES / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "memestream"
    files = {p.name for p in STORES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    for _, doc in _documents():
        assert "namespace" not in doc["metadata"], "kustomization.yaml sets the namespace"


@pytest.mark.skipif(
    not os.environ.get("MEMESTREAM_EXTRA_CRDS"),
    reason="the operators' CRDs are not in ../shared/crds: set MEMESTREAM_EXTRA_CRDS",
)
def test_operator_resources_match_their_crds_strictly() -> None:
    import jsonschema

    folder = Path(os.environ["MEMESTREAM_EXTRA_CRDS"])
    for file, doc in _documents():
        key = (doc["apiVersion"], doc["kind"])
        if key not in EXTRA_CRDS:
            continue
        crd = yaml.safe_load((folder / EXTRA_CRDS[key]).read_text())
        version = key[0].split("/")[1]
        (served,) = [v for v in crd["spec"]["versions"] if v["served"] and v["name"] == version]
        checker = jsonschema.Draft7Validator(strict(served["schema"]["openAPIV3Schema"]))
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in checker.iter_errors(doc)
        ]
        assert errors == [], (file, doc["metadata"]["name"], errors)


def test_postgres_fails_over_synchronously_and_the_apps_follow_the_primary() -> None:
    cluster = one("Cluster")
    assert cluster["spec"]["instances"] >= 2
    assert cluster["spec"]["postgresql"]["synchronous"]["number"] >= 1
    name = cluster["metadata"]["name"]
    # CloudNativePG's `<cluster>-rw` Service follows the primary.
    for key in ("DATABASE_URL", "REGISTRY_DATASOURCE_URL"):
        url = env_example()[key].removeprefix("jdbc:")
        assert urlsplit(url).hostname == f"{name}-rw.memestream.svc", key
    backup = one("ScheduledBackup")
    assert backup["spec"]["cluster"]["name"] == name
    store = cluster["spec"]["backup"]["barmanObjectStore"]
    bucket = urlsplit(store["destinationPath"]).netloc
    tenant = one("Tenant")
    assert bucket in {b["name"] for b in tenant["spec"]["buckets"]}
    assert urlsplit(store["endpointURL"]).hostname == f"{tenant['metadata']['name']}.memestream.svc"


def test_redis_has_a_replica_and_three_sentinels_on_the_apps_master_name() -> None:
    replication = one("RedisReplication")
    sentinel = one("RedisSentinel")
    assert replication["spec"]["clusterSize"] >= 2 and sentinel["spec"]["clusterSize"] == 3
    sentinel_config = sentinel["spec"]["redisSentinelConfig"]
    assert sentinel_config["redisReplicationName"] == replication["metadata"]["name"]
    assert int(sentinel_config["quorum"]) == 2
    master = sentinel_config["masterGroupName"]
    assert master == Settings.model_fields["redis_sentinel_master"].default
    # The operator names the Sentinels' Service `<name>-sentinel`; the apps ask it.
    service = f"{sentinel['metadata']['name']}-sentinel"
    hosts = [h.strip().rsplit(":", 1) for h in config()["REDIS_SENTINELS"].split(",")]
    assert hosts == [[service, "26379"]]
    assert config()["REDIS_SENTINEL_MASTER"] == master


def test_minio_erasure_codes_over_four_drives_and_holds_the_apps_bucket() -> None:
    tenant = one("Tenant")
    (pool,) = tenant["spec"]["pools"]
    assert pool["servers"] * pool["volumesPerServer"] >= 4
    assert config()["S3_BUCKET"] in {b["name"] for b in tenant["spec"]["buckets"]}
    assert urlsplit(env_example()["S3_ENDPOINT_URL"]).hostname == (
        f"{tenant['metadata']['name']}.memestream.svc"
    )


def collector_config() -> dict[str, Any]:
    return yaml.safe_load(one("ConfigMap", "memestream-otel-collector")["data"]["config.yaml"])


def test_the_collector_pipelines_use_only_what_they_define() -> None:
    conf = collector_config()
    pipelines = conf["service"]["pipelines"]
    assert set(pipelines) == {"traces", "logs"}
    for pipeline in pipelines.values():
        for part in ("receivers", "processors", "exporters"):
            assert set(pipeline[part]) <= set(conf[part]), (part, pipeline[part])
        assert pipeline["processors"][0] == "memory_limiter", "memory_limiter comes first"
    assert set(conf["service"]["extensions"]) <= set(conf["extensions"])


def test_the_apps_and_fluent_bit_send_to_the_collector_service() -> None:
    service = one("Service", "memestream-otel-collector")
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    http = collector_config()["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert int(http.rsplit(":", 1)[1]) == ports["otlp-http"]
    endpoint = urlsplit(config()["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert (endpoint.hostname, endpoint.port) == (service["metadata"]["name"], ports["otlp-http"])
    assert config()["OTEL_TRACES_EXPORTER"] == "otlp"
    fluent = one("ConfigMap", "memestream-fluent-bit")["data"]["fluent-bit.conf"]
    output = fluent[fluent.index("[OUTPUT]") :]
    assert "opentelemetry" in output and f"Host         {service['metadata']['name']}" in output
    assert f"Port         {ports['otlp-http']}" in output
    # Every app Deployment is named memestream-*, and its logs are the ones tailed.
    assert "Path              /var/log/containers/memestream-*_memestream_*.log" in fluent
    daemonset = one("DaemonSet")
    binding = one("ClusterRoleBinding")
    assert (
        binding["subjects"][0]["name"]
        == daemonset["spec"]["template"]["spec"]["serviceAccountName"]
    )
