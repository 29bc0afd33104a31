"""Every folder setting points somewhere the container can write, in compose and on Kubernetes.

Why: relative Path settings resolve against PROJECT_ROOT, which is /app in the image: owned by
root (the processes run as `app`) and, in the Deployments, on a read-only root filesystem. A
default like `.stack/data/workers` therefore crashes a worker at start-up (Faust's folder) and
an upload spool in the API. The settings are read from domain/settings.py, so a new Path
setting fails here until compose, the manifests and the Dockerfile set it.
"""

from __future__ import annotations

import re
import types
from pathlib import Path, PurePosixPath
from typing import Any, Union, get_args, get_origin

import pytest
import yaml

from domain.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
WORKLOADS = ROOT / "deploy" / "strimzi" / "workloads.yaml"
DOCKERFILE = ROOT / "Dockerfile"
#: World-writable in the python:3.11-slim image (mode 1777), so writable by the `app` user.
IMAGE_TMP = PurePosixPath("/tmp")


def _is_path(annotation: Any) -> bool:
    """Path or Path | None; not containers of paths (AI_MODEL_DIRS lists read-only models)."""
    if annotation is Path:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(arg is Path for arg in get_args(annotation))
    return False


PATH_SETTINGS = {
    name.upper(): field.get_default(call_default_factory=True)
    for name, field in Settings.model_fields.items()
    if _is_path(field.annotation)
}
#: Relative defaults (resolved against /app) and absolute ones outside the image's /tmp (the
#: home folder: read-only in the pods) must be set; a None default (PROMETHEUS_MULTIPROC_DIR)
#: only when it is used, and then writable like the rest.
#: Folders the processes only read, never write: where the image's npm packages are
#: installed (WEB_VENDOR_DIR, api/routes/vendor.py), inside the read-only /app on purpose.
READ_ONLY = {"WEB_VENDOR_DIR"}
REQUIRED = {
    name
    for name, default in PATH_SETTINGS.items()
    if default is not None
    and not PurePosixPath(default).is_relative_to(IMAGE_TMP)
    and name not in READ_ONLY
}


def under(value: str, mounts: set[PurePosixPath]) -> bool:
    path = PurePosixPath(value)
    return (
        path.is_absolute()
        and ".." not in path.parts
        and any(path.is_relative_to(m) for m in mounts)
    )


def test_the_settings_have_the_folders_this_test_is_about() -> None:
    relative = {n for n, d in PATH_SETTINGS.items() if d is not None and not Path(d).is_absolute()}
    assert {"WORKER_DATA_DIR", "UPLOAD_TMP_DIR"} <= relative <= REQUIRED | READ_ONLY
    assert "CACHE_DIR" in REQUIRED and "PROMETHEUS_MULTIPROC_DIR" in PATH_SETTINGS


# --- docker-compose --------------------------------------------------------------------------
def compose_app_services() -> dict[str, dict[str, Any]]:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    return {name: svc for name, svc in services.items() if "build" in svc}


@pytest.mark.parametrize("service", sorted(compose_app_services()))
def test_compose_sets_every_path_setting_to_a_writable_folder(service: str) -> None:
    svc = compose_app_services()[service]
    env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
    # /tmp of the container, or a volume compose mounts into it (not read-only).
    mounts = {IMAGE_TMP}
    for volume in svc.get("volumes", []):
        parts = str(volume).split(":")
        if len(parts) >= 2 and not (len(parts) == 3 and "ro" in parts[2].split(",")):
            mounts.add(PurePosixPath(parts[1]))
    missing = REQUIRED - set(env)
    assert not missing, f"{service}: {sorted(missing)} would resolve into the read-only /app"
    for name in PATH_SETTINGS.keys() & env.keys():
        assert under(env[name], mounts), f"{service}: {name}={env[name]} is not writable"


# --- Kubernetes ------------------------------------------------------------------------------
def pod_containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, container, pod spec) of every Deployment and Job of the project's image
    (the schema registry's pods run Apicurio's image, which reads none of these settings)."""
    out = []
    for doc in yaml.safe_load_all(WORKLOADS.read_text()):
        if doc and doc["kind"] in ("Deployment", "Job"):
            spec = doc["spec"]["template"]["spec"]
            out.extend(
                (doc["metadata"]["name"], c, spec)
                for c in spec["containers"]
                if c["image"].startswith("memestream:")
            )
    return out


@pytest.mark.parametrize(
    ("workload", "container", "pod"), pod_containers(), ids=[w for w, _, _ in pod_containers()]
)
def test_pods_set_every_path_setting_inside_a_writable_mount(
    workload: str, container: dict[str, Any], pod: dict[str, Any]
) -> None:
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {
        PurePosixPath(m["mountPath"])
        for m in container.get("volumeMounts", [])
        if not m.get("readOnly") and "emptyDir" in volumes.get(m["name"], {})
    }
    assert mounts, f"{workload}: no writable volume at all"
    env = {e["name"]: e.get("value") for e in container["env"]}
    missing = REQUIRED - set(env)
    assert not missing, f"{workload}: {sorted(missing)} would resolve into the read-only /app"
    for name in PATH_SETTINGS.keys() & env.keys():
        value = env[name]
        assert value is not None, f"{workload}: {name} must be a literal path"
        assert under(value, mounts), f"{workload}: {name}={value} is outside {sorted(mounts)}"
    assert under(container["workingDir"], mounts), f"{workload}: workingDir is not writable"


def test_generator_and_compose_agree_on_the_folders() -> None:
    """One set of values: the manifests' generator and compose name the same folders."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "deploy_generate_paths", ROOT / "deploy/generate.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    for service, svc in compose_app_services().items():
        env = svc.get("environment") or {}
        for name, value in module.WRITABLE_PATHS.items():
            assert env.get(name) == value, f"{service}: {name}"


# --- the image -------------------------------------------------------------------------------
def test_the_image_defaults_every_path_setting_to_tmp() -> None:
    """A bare `docker run` of the image must not crash either."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = " ".join(re.findall(r"^ENV (.+)$", text, re.MULTILINE))
    env = dict(re.findall(r"\b([A-Z_]+)=(\S+)", lines))
    missing = REQUIRED - set(env)
    assert not missing, f"the Dockerfile leaves {sorted(missing)} to resolve into /app"
    for name in REQUIRED:
        assert under(env[name], {IMAGE_TMP}), f"{name}={env[name]}"
