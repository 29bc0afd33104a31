"""deploy/strimzi against the CRD schemas (strict) and against the code's registries.

Why: nothing here runs a cluster, so the manifests are checked offline the way `kubeconform
-strict` would (an unknown field anywhere is an error), and their topics, consumer groups, roles
and variable names are checked against producers.topics, producers.roles and domain.settings.
The CRDs come from `../shared/crds` beside the repository (CI clones it with a copy). Without
them the strict validation is skipped locally, but fails when `CI=true`: a CI run that skipped
it would pass manifests nothing validated.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from domain import metrics
from domain.settings import Settings
from producers.roles import INFERENCE, ROLES, WORKER_ROLES, WRITERS
from producers.topics import (
    ALL_TOPICS,
    BY_NAME,
    MEME_DELETED,
    MEME_FEED,
    MEME_REQUESTS,
    MEME_VIEWS,
    MEME_VOTES,
)

ROOT = Path(__file__).resolve().parent.parent
STRIMZI = ROOT / "deploy" / "strimzi"
CRDS = ROOT.parent / "shared" / "crds"
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}

CRD_FILES = {
    ("kafka.strimzi.io/v1", "Kafka"): "strimzi/040-Crd-kafka.yaml",
    ("kafka.strimzi.io/v1", "KafkaTopic"): "strimzi/043-Crd-kafkatopic.yaml",
    ("kafka.strimzi.io/v1", "KafkaUser"): "strimzi/044-Crd-kafkauser.yaml",
    ("kafka.strimzi.io/v1", "KafkaNodePool"): "strimzi/045-Crd-kafkanodepool.yaml",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda/keda.sh_scaledobjects.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda/keda.sh_triggerauthentications.yaml",
}
BUILT_IN = {
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("batch/v1", "Job"),
}
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def in_ci() -> bool:
    """CI services (GitHub Actions, GitLab, most others) set CI=true."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require_crds(crds: Path | None = None) -> None:
    """Skips a test that needs the CRD schemas when they are missing, or fails it in CI."""
    crds = CRDS if crds is None else crds
    if crds.is_dir():
        return
    reason = f"CRD schemas not found at {crds} (shared/ beside the repository)"
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so strict CRD validation may not be skipped")
    pytest.skip(reason)


def test_missing_crds_skip_locally_but_fail_in_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-crds"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_crds(missing)
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require_crds(missing)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_crds(missing)
    require_crds(tmp_path)  # present: neither


# --- loading -----------------------------------------------------------------------------------
def manifest_files() -> list[Path]:
    return sorted(p for p in STRIMZI.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def _documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    out = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path.name, doc))
    return tuple(out)


def documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) of every manifest; a deep copy, so tests cannot leak edits."""
    import copy

    return copy.deepcopy(list(_documents()))


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def by_name(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in of_kind(kind)}


# --- strict CRD validation ---------------------------------------------------------------------
def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown properties forbidden wherever it lists its properties.

    Objects marked x-kubernetes-preserve-unknown-fields stay open, and so do oneOf/anyOf
    branches (Strimzi uses them to say "one of these keys", not to list every key).
    """
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: strict(v) for k, v in out["properties"].items()}
        if not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    if isinstance(out.get("items"), dict):
        out["items"] = strict(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(out["additionalProperties"])
    return out


@cache
def validator(api_version: str, kind: str) -> Any:
    import jsonschema

    crd = yaml.safe_load((CRDS / CRD_FILES[(api_version, kind)]).read_text())
    version = api_version.split("/")[1]
    (served,) = [v for v in crd["spec"]["versions"] if v["served"] and v["name"] == version]
    schema = strict(served["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def crd_errors(doc: dict[str, Any]) -> list[str]:
    errors = validator(doc["apiVersion"], doc["kind"]).iter_errors(doc)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def test_strict_validator_rejects_unknown_fields() -> None:
    require_crds()
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "t"},
        "spec": {"partitions": 1, "replica": 3},
    }
    assert any("replica" in e for e in crd_errors(topic))
    topic["spec"] = {"partitions": 1, "config": {"anything.goes": "1"}}  # preserve-unknown
    assert crd_errors(topic) == []
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "s"},
        "spec": {
            "scaleTargetRef": {"name": "d"},
            "triggers": [{"type": "kafka", "metadata": {"lagThreshold": 5}}],
        },
    }
    assert crd_errors(scaled), "trigger metadata values must be strings"
    (kafka,) = of_kind("Kafka")
    kafka["spec"]["kafka"]["listeners"][0]["tlss"] = True
    assert any("tlss" in e for e in crd_errors(kafka)), "nested unknown fields are errors"


def _ids() -> list[str]:
    return [f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in documents()]


@pytest.mark.parametrize(("file", "doc"), documents(), ids=_ids())
def test_manifest_is_valid(file: str, doc: dict[str, Any]) -> None:
    key = (doc.get("apiVersion"), doc.get("kind"))
    meta = doc.get("metadata") or {}
    assert DNS_SUBDOMAIN.fullmatch(meta.get("name", "")), f"{file}: bad metadata.name"
    assert set(meta) <= {"name", "namespace", "labels", "annotations"}, f"{file}: {set(meta)}"
    for field in ("labels", "annotations"):
        assert all(isinstance(v, str) for v in (meta.get(field) or {}).values()), field
    assert "namespace" not in meta, "kustomization.yaml sets the namespace"
    if key in CRD_FILES:
        require_crds()
        assert crd_errors(doc) == []
    else:
        assert key in BUILT_IN, f"{file}: unexpected kind {key}"
        if key != ("v1", "Namespace") and key != ("v1", "ConfigMap"):
            assert "spec" in doc or doc["kind"] == "ServiceAccount"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((STRIMZI / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == "memestream"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in manifest_files())
    assert [i["name"] for i in kustomization["images"]] == ["memestream"]


# --- generated files ---------------------------------------------------------------------------
@cache
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_generate", ROOT / "deploy/generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_generated_manifests_are_up_to_date(tmp_path: Path) -> None:
    gen = generator()
    written = gen.write(tmp_path)
    assert {p.name for p in written} == {
        "topics.yaml",
        "users.yaml",
        "workloads.yaml",
        "scaling.yaml",
    }
    for path in written:
        committed = (STRIMZI / path.name).read_text()
        assert committed == path.read_text(), (
            f"deploy/strimzi/{path.name} is stale: run `python deploy/generate.py`\n"
            + "".join(gen.stale())
        )


# --- topics ------------------------------------------------------------------------------------
def test_a_kafka_topic_per_registry_topic() -> None:
    topics = {t["spec"]["topicName"]: t for t in of_kind("KafkaTopic")}
    assert set(topics) == {t.name for t in ALL_TOPICS}
    for spec in ALL_TOPICS:
        manifest = topics[spec.name]
        assert manifest["metadata"]["labels"]["strimzi.io/cluster"] == "memestream"
        assert manifest["spec"]["partitions"] == spec.partitions
        assert manifest["spec"]["replicas"] == spec.replication_factor
        assert manifest["spec"]["config"] == spec.config()
    assert topics[MEME_DELETED.name]["spec"]["config"]["cleanup.policy"] == "compact,delete"


def test_kafka_cluster_is_kraft_with_node_pools_and_metrics() -> None:
    (kafka,) = of_kind("Kafka")
    pools = of_kind("KafkaNodePool")
    roles = {role for pool in pools for role in pool["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    assert all(
        p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] for p in pools
    )
    assert sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"]) % 2
    listeners = {lst["name"]: lst for lst in kafka["spec"]["kafka"]["listeners"]}
    assert listeners["plain"]["port"] == 9092
    assert listeners["plain"]["authentication"]["type"] == "scram-sha-512"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    ref = kafka["spec"]["kafka"]["metricsConfig"]["valueFrom"]["configMapKeyRef"]
    metrics_cm = by_name("ConfigMap")[ref["name"]]
    assert ref["key"] in metrics_cm["data"]
    assert yaml.safe_load(metrics_cm["data"][ref["key"]])["rules"]
    replicas = max(t.replication_factor for t in ALL_TOPICS)
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    assert brokers >= replicas


# --- users and ACLs ----------------------------------------------------------------------------
def grants(user: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        assert acl.get("type", "allow") == "allow"
        res = acl["resource"]
        key = (
            res["type"],
            res.get("name", "") + ("*" if res.get("patternType") == "prefix" else ""),
        )
        out.setdefault(key, set()).update(acl["operations"])
    return out


def test_api_user_acls() -> None:
    api = grants(by_name("KafkaUser")["memestream-api"])
    for topic in (MEME_REQUESTS, MEME_VOTES, MEME_VIEWS, MEME_DELETED):
        assert "Write" in api[("topic", topic.name)], topic.name
    assert "Read" in api[("topic", MEME_FEED.name)]
    assert "Read" in api[("group", "memestream-api*")]
    writes = {name for (kind, name), ops in api.items() if kind == "topic" and "Write" in ops}
    # Exactly what the code writes (producers/roles.py, tests/test_roles.py): the review
    # route (api/routes/review.py) sends meme.rendered and meme.feed, and nothing dead-letters.
    assert writes == set(WRITERS["api"].writes)
    assert {MEME_FEED.name, "meme.rendered"} <= writes and MEME_FEED.dlq not in writes


@pytest.mark.parametrize("role", sorted(ROLES))
def test_role_user_acls(role: str) -> None:
    spec = ROLES[role]
    user = by_name("KafkaUser")[spec.group_id]
    acl = grants(user)
    for topic in spec.topics:
        assert {"Read", "Describe"} <= acl[("topic", topic)], topic
        assert "Write" in acl[("topic", BY_NAME[topic].dlq)], f"{role} cannot write the DLQ"
    outputs = {name for (kind, name), ops in acl.items() if kind == "topic" and "Write" in ops}
    declared = set(WRITERS[role].writes) | {BY_NAME[t].dlq for t in spec.topics}
    assert outputs == declared | {f"{spec.group_id}-*"}
    assert "Read" in acl[("group", spec.group_id)]
    literal = {name for (kind, name) in acl if kind == "topic" and not name.endswith("*")}
    assert literal <= set(BY_NAME), f"ACL on unknown topics: {literal - set(BY_NAME)}"
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"


# --- workloads ---------------------------------------------------------------------------------
def is_app(doc: dict[str, Any]) -> bool:
    """A workload of the project's image (not the schema registry's)."""
    images = [c["image"] for c in doc["spec"]["template"]["spec"]["containers"]]
    return all(image.startswith("memestream:") for image in images)


def app_deployments() -> list[dict[str, Any]]:
    return [doc for doc in of_kind("Deployment") if is_app(doc)]


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("Deployment", "Job"):
        for doc in of_kind(kind):
            if not is_app(doc):
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield doc["metadata"]["name"], container


def test_env_names_are_settings_fields() -> None:
    for name, container in containers():
        # `command` would replace the image's entrypoint (it prepares the metrics folder).
        assert "command" not in container and container["args"], name
        unknown = {e["name"] for e in container["env"]} - SETTINGS_ENV
        assert not unknown, f"{name}: {unknown} are not domain.settings fields"


def test_deployments_have_the_plans_resources_and_env() -> None:
    plan = {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "2000m", "memory": "2Gi"},
    }
    required = {
        "IMAGE_QUALITY",
        "CACHE_SIZE_MB",
        "WORKER_THREADS",
        "AI_MODEL_SIZE",
        "REDIS_POOL_SIZE",
    }
    urls = {
        n.upper()
        for n, f in Settings.model_fields.items()
        if (n.endswith("_url") or n.endswith("_servers")) and f.default is not None
    }
    config = by_name("ConfigMap")["memestream-config"]["data"]
    users = by_name("KafkaUser")
    # What only a Kafka client needs: its brokers and the registry naming its topics' schemas.
    kafka = {"KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL"}
    for doc in app_deployments():
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        assert container["resources"] == plan, doc["metadata"]["name"]
        env = {e["name"]: e for e in container["env"]}
        for entry in env.values():
            ref = entry.get("valueFrom", {}).get("configMapKeyRef")
            if ref and ref["name"] == "memestream-config" and not ref.get("optional"):
                assert ref["key"] in config, ref
        if doc["metadata"]["name"] == f"memestream-{INFERENCE}":
            # Reads no topic: no Kafka address, no Kafka credentials (no KafkaUser to leak).
            assert required | (urls - kafka) <= set(env), doc["metadata"]["name"]
            assert not {name for name in env if name.startswith("KAFKA_")}
            threads = env["AI_TORCH_THREADS"]["valueFrom"]
            assert threads == env["WORKER_THREADS"]["valueFrom"], "threads follow the CPU limit"
        else:
            assert required | urls <= set(env), doc["metadata"]["name"]
            password = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
            assert password == env["KAFKA_SASL_USERNAME"]["value"] and password in users
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for key, value in config.items():
        assert key in SETTINGS_ENV, key
        Settings(**{key.lower(): value})  # every configured value is valid for its setting


def test_a_deployment_per_role_and_the_api() -> None:
    deployments = {d["metadata"]["name"]: d for d in app_deployments()}
    assert set(deployments) == {"memestream-api"} | {f"memestream-{r}" for r in WORKER_ROLES}
    assert set(by_name("Deployment")) - set(deployments) == {"memestream-schema-registry"}
    api = deployments["memestream-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["args"][:2] == ["memestream", "api"]  # memestream/stack/apps.py's uvicorn
    api_env = {e["name"]: e for e in api["env"]}
    forwarded = api_env["FORWARDED_ALLOW_IPS"]["valueFrom"]["configMapKeyRef"]["key"]
    assert forwarded == "FORWARDED_ALLOW_IPS"
    assert api_env["MEMESTREAM_ENV"]["value"] == "production"
    for role, spec in ROLES.items():
        container = deployments[f"memestream-{role}"]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["python", "-m", "streams", "worker", "--role", role]
        env = {e["name"]: e for e in container["env"]}
        assert env["KAFKA_SASL_USERNAME"]["value"] == spec.group_id
        port = container["ports"][0]["containerPort"]
        assert port == int(env["WORKER_WEB_PORT"]["value"]) + WORKER_ROLES.index(role)
        assert deployments[f"memestream-{role}"]["spec"]["template"]["metadata"]["annotations"][
            "prometheus.io/port"
        ] == str(port)
        assert "replicas" not in deployments[f"memestream-{role}"]["spec"], "KEDA owns replicas"


def test_the_schema_registry_runs_on_postgres_and_every_app_uses_it() -> None:
    from memestream.stack.registry import APICURIO_VERSION, REGISTRY_DB_SCHEMA

    registry = by_name("Deployment")["memestream-schema-registry"]
    pod = registry["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"apicurio/apicurio-registry:{APICURIO_VERSION}"
    env = {e["name"]: e for e in container["env"]}
    assert env["APICURIO_STORAGE_SQL_KIND"]["value"] == "postgresql"
    assert env["APICURIO_DATASOURCE_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == (
        "memestream-stores"
    )
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    (init,) = pod["initContainers"]
    assert f"create schema if not exists {REGISTRY_DB_SCHEMA}" in " ".join(init["command"])
    service = by_name("Service")["memestream-schema-registry"]
    port = service["spec"]["ports"][0]["port"]
    stores = (STRIMZI / "stores.env.example").read_text()
    for key in ("REGISTRY_DATASOURCE_URL", "REGISTRY_DATASOURCE_USERNAME"):
        assert f"{key}=" in stores
    assert f"currentSchema={REGISTRY_DB_SCHEMA}" in stores
    for name, app in containers():
        if name == f"memestream-{INFERENCE}":
            continue  # reads and writes no topic (test_the_inference_deployment_serves_nats...)
        app_env = {e["name"]: e for e in app["env"]}
        url = app_env["SCHEMA_REGISTRY_URL"]["value"]
        assert url == f"http://memestream-schema-registry:{port}/apis/ccompat/v7", name


def test_the_inference_deployment_serves_nats_not_kafka() -> None:
    name = f"memestream-{INFERENCE}"
    deployment = by_name("Deployment")[name]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["python", "-m", "streams", "worker", "--role", INFERENCE]
    env = {e["name"]: e for e in container["env"]}
    port = container["ports"][0]["containerPort"]
    assert port == int(env["WORKER_WEB_PORT"]["value"]) + WORKER_ROLES.index(INFERENCE)
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(
        port
    )
    # Ready only once its models are warm and it joined the queue group.
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert "NATS_URL" in env and "replicas" not in deployment["spec"], "KEDA owns replicas"
    assert name not in by_name("KafkaUser")


def test_inference_scales_on_requests_in_flight_and_cpu() -> None:
    """NATS core request-reply keeps no backlog KEDA could read: the role scales on what its
    workers report (requests in flight, items in their batchers) and on CPU."""
    scaled = by_name("ScaledObject")[f"memestream-{INFERENCE}"]["spec"]
    assert scaled["scaleTargetRef"]["name"] in by_name("Deployment")
    types = sorted(t["type"] for t in scaled["triggers"])
    assert types == ["cpu", "prometheus"]
    (prometheus,) = (t for t in scaled["triggers"] if t["type"] == "prometheus")
    query = prometheus["metadata"]["query"]
    names = set(re.findall(r"memestream_[a-z0-9_]+", query))
    assert names and names <= set(metrics.series_labels()), names
    assert 'component="inference"' in query and "inference_requests" in query
    assert float(prometheus["metadata"]["threshold"]) > 0
    (cpu,) = (t for t in scaled["triggers"] if t["type"] == "cpu")
    assert cpu["metricType"] == "Utilization" and 0 < int(cpu["metadata"]["value"]) <= 100
    assert 1 <= scaled["minReplicaCount"] < scaled["maxReplicaCount"]
    assert "fallback" not in scaled, "KEDA's fallback does not apply to CPU triggers"


def test_api_hpa_and_pdbs() -> None:
    (hpa,) = of_kind("HorizontalPodAutoscaler")
    spec = hpa["spec"]
    assert spec["scaleTargetRef"]["name"] == "memestream-api"
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 20)
    resources = {
        m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
        for m in spec["metrics"]
        if m["type"] == "Resource"
    }
    assert resources == {"cpu": 50, "memory": 70}
    for metric in (m for m in spec["metrics"] if m["type"] == "Pods"):
        assert metric["pods"]["metric"]["name"] in metrics.series_labels()
    assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    deployments = by_name("Deployment")
    pdbs = of_kind("PodDisruptionBudget")
    covered = set()
    for pdb in pdbs:
        selector = pdb["spec"]["selector"]["matchLabels"]
        for name, doc in deployments.items():
            if selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items():
                covered.add(name)
    assert covered == set(deployments)


# --- KEDA --------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", sorted(ROLES))
def test_scaled_object_per_consumer_group(role: str) -> None:
    spec = ROLES[role]
    scaled = by_name("ScaledObject")[f"memestream-{role}"]["spec"]
    assert scaled["scaleTargetRef"]["name"] in by_name("Deployment")
    kafka = [t for t in scaled["triggers"] if t["type"] == "kafka"]
    assert sorted(t["metadata"]["topic"] for t in kafka) == sorted(spec.topics)
    auths = by_name("TriggerAuthentication")
    for trigger in kafka:
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == spec.group_id
        assert int(meta["lagThreshold"]) > int(meta["activationLagThreshold"]) >= 0
        assert meta["limitToPartitionsWithLag"] == "true"
        assert meta["bootstrapServers"].endswith(":9092")
        assert trigger["authenticationRef"]["name"] in auths
    assert scaled["maxReplicaCount"] <= max(BY_NAME[t].partitions for t in spec.topics)
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    up, down = behavior["scaleUp"], behavior["scaleDown"]
    assert up["stabilizationWindowSeconds"] < down["stabilizationWindowSeconds"]
    assert max(p["value"] for p in up["policies"] if p["type"] == "Percent") >= 100
    for trigger in (t for t in scaled["triggers"] if t["type"] == "prometheus"):
        names = set(re.findall(r"memestream_[a-z0-9_]+", trigger["metadata"]["query"]))
        assert names and names <= set(metrics.series_labels()), names
        float(trigger["metadata"]["threshold"])


def test_keda_reads_kafka_as_its_own_user() -> None:
    (auth,) = of_kind("TriggerAuthentication")
    secret = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    keda_user = by_name("KafkaUser")[secret["password"]["name"]]
    config = {r["parameter"]: r for r in auth["spec"]["configMapTargetRef"]}
    data = by_name("ConfigMap")[config["username"]["name"]]["data"]
    assert data["username"] == keda_user["metadata"]["name"]
    assert data["sasl"] == "scram_sha512"
    ops = {op for ops in grants(keda_user).values() for op in ops}
    assert ops == {"Describe"}, "KEDA only needs to describe groups and topics"
    prometheus_roles = [
        r
        for r in ROLES
        if any(
            t["type"] == "prometheus"
            for t in by_name("ScaledObject")[f"memestream-{r}"]["spec"]["triggers"]
        )
    ]
    assert prometheus_roles, "no ScaledObject uses a Prometheus signal"
