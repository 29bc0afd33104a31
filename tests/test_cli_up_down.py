"""`memestream up --detach` and `memestream down` as a user runs them, in subprocesses.

The run is private so it never touches what teammates use: its own stack folder (pid files,
logs), API port, worker web port, consumer group and chDB folder. The shared stores are
already running, so `up` must reuse them as `external` (idempotent: never a second server,
never a port fight) and `down` must stop only what this `up` started: the API and the worker.
PostgreSQL is checked over its unix socket in the stack folder, so that one folder is linked
to the shared cluster's.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image

from domain.settings import PROJECT_ROOT, ServiceProvider, Settings, get_settings
from domain.templates import TemplateCatalog
from memestream.stack import Stack
from memestream.testing import processes
from memestream.testing.environment import environment
from producers.roles import INFERENCE, RENDER
from tests.services import services

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.e2e, pytest.mark.timeout(90)]

STORES = ("kafka", "postgres", "registry", "redis", "minio", "nats")


@pytest.fixture(scope="module")
def shared() -> Iterator[Settings]:
    settings = get_settings()
    if settings.test_services is not ServiceProvider.LOCAL:
        pytest.skip("`up` starts the local stack's stores; containers are not those")
    with services(settings) as ready:
        yield ready


def _private_env(shared: Settings, root: Path) -> dict[str, str]:
    stack_dir = root / "stack"
    (stack_dir / "data").mkdir(parents=True)
    shared_pg = (shared.stack_path / "data" / "postgres").resolve()
    (stack_dir / "data" / "postgres").symlink_to(shared_pg, target_is_directory=True)
    prefix = f"test-up-{uuid.uuid4().hex[:8]}"
    _, web_base = processes.worker_web_port("render")
    return environment(shared) | {
        "STACK_DIR": str(stack_dir),
        "CLICKHOUSE_URL": f"chdb://{root / 'chdb'}",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(processes.free_port()),
        "WORKER_WEB_PORT": web_base,
        "WORKER_ID": prefix,
        "CONSUMER_GROUP_PREFIX": prefix,
        # Its own subjects: the session's inference worker (same queue group) must not take
        # the captions this run's worker is asked to count.
        "INFERENCE_SUBJECT": f"{prefix}.inference",
        "KAFKA_AUTO_OFFSET_RESET": "latest",
        "WORKER_DATA_DIR": str(root / "workers"),
        "UPLOAD_TMP_DIR": str(root / "uploads"),
        # Moderation models load on the first render; not what this test is about, and
        # leaving them out keeps it well inside its time bound.
        "AI_ENABLED": "false",
    }


def _memestream(
    env: dict[str, str], *args: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memestream", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _started(stack_dir: Path) -> dict[str, psutil.Process]:
    """The live processes `up` recorded in this stack folder's pid files (pid and start
    time, so a recycled pid is never taken for ours)."""
    found: dict[str, psutil.Process] = {}
    for path in (stack_dir / "run").glob("*.pid"):
        record = json.loads(path.read_text())
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(record["pid"])
            if abs(proc.create_time() - record["create_time"]) <= 1.0:
                found[path.stem] = proc
    return found


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_rendered(client: httpx.Client, meme_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/meme/{meme_id}").json()
        if body.get("status") in {"rendered", "failed"}:
            return body
        time.sleep(0.2)
    raise TimeoutError(f"{meme_id} was not rendered within {timeout}s")


def test_up_detach_serves_a_meme_and_down_stops_only_what_up_started(
    shared: Settings, tmp_path: Path
) -> None:
    env = _private_env(shared, tmp_path)
    stack_dir = Path(env["STACK_DIR"])
    api = f"http://127.0.0.1:{env['API_PORT']}"
    group = RENDER.group_id_for(env["CONSUMER_GROUP_PREFIX"])
    # "latest" for a new group picks its start only at its first fetch; commit the ends now
    # so a request posted while the worker is still joining is not skipped.
    processes.pin_group_offsets(shared.kafka_bootstrap_servers, group, RENDER.topics)
    try:
        up = _memestream(env, "up", "--detach", "--role", "render", timeout=60)
        started = _started(stack_dir)
        assert up.returncode == 0, up.stdout + up.stderr
        assert set(started) == {"api", "worker-render"}, started  # no store of its own
        for store in STORES:
            row = next(line for line in up.stdout.splitlines() if f" {store} " in line)
            assert "external" in row, row
        assert "running in the background" in up.stdout

        template = TemplateCatalog.default().get("classic")
        with httpx.Client(base_url=api, timeout=10) as client:
            accepted = client.post(
                "/api/meme/generate",
                json={"template_id": "classic", "texts": ["up --detach", "then down"]},
            )
            assert accepted.status_code == 202, accepted.text
            meme_id = accepted.json()["meme_id"]
            meme = _wait_rendered(client, meme_id, timeout=30)
            assert meme["status"] == "rendered", meme
            image = client.get(f"/api/meme/{meme_id}/image")
        assert image.status_code == 200
        picture = Image.open(io.BytesIO(image.content))
        picture.load()
        assert picture.size == (template.width, template.height)

        down = _memestream(env, "down", timeout=60)
        assert down.returncode == 0, down.stdout + down.stderr
        assert all(_gone(proc) for proc in started.values()), started
        assert not list((stack_dir / "run").glob("*.pid"))
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{api}/health", timeout=2)
        # The shared stores outlive `down`: they were never this run's to stop.
        statuses = {st.name: st for st in Stack(shared).status(STORES)}
        assert all(st.up for st in statuses.values()), statuses
    finally:
        leftover = [proc for proc in _started(stack_dir).values() if not _gone(proc)]
        if leftover:  # a failed run: stop what this test's `up` started, by pid
            _memestream(env, "down", timeout=60)
            for proc in leftover:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()


def test_up_starts_the_inference_worker_and_down_stops_it(shared: Settings, tmp_path: Path) -> None:
    """`up` runs the inference role (the API's captions reach it over NATS) and `down` stops
    it like the others."""
    env = _private_env(shared, tmp_path)
    web_port, env["WORKER_WEB_PORT"] = processes.worker_web_port(INFERENCE)
    stack_dir = Path(env["STACK_DIR"])
    api = f"http://127.0.0.1:{env['API_PORT']}"
    worker = f"http://127.0.0.1:{web_port}"
    try:
        up = _memestream(env, "up", "--detach", "--role", INFERENCE, timeout=60)
        started = _started(stack_dir)
        assert up.returncode == 0, up.stdout + up.stderr
        assert set(started) == {"api", f"worker-{INFERENCE}"}, started
        # Healthy once its models are warm and it joined the queue group (cold: real models).
        deadline = time.monotonic() + 180
        healthy = False
        while not healthy and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                healthy = httpx.get(f"{worker}/health", timeout=2).status_code == 200
            if not healthy:
                time.sleep(0.5)
        assert healthy, "the inference worker never became healthy"
        caption = httpx.post(
            f"{api}/api/meme/caption", json={"template_id": "drake", "topic": "up"}, timeout=30
        )
        assert caption.status_code == 200, caption.text

        def taken() -> float:
            """Captions the worker took, whatever became of them: on a slow machine the model
            may miss the deadline, and the worker counts that (`expired`) as the API falls
            back at the same moment, so the count is polled briefly."""
            return sum(
                processes.metric_value(
                    worker, "memestream_inference_requests_total", task="caption", outcome=outcome
                )
                for outcome in ("answered", "expired", "error")
            )

        wait_until = time.monotonic() + 5
        while taken() < 1 and time.monotonic() < wait_until:
            time.sleep(0.1)
        assert taken() == 1, "the caption did not reach the inference worker"
        down = _memestream(env, "down", timeout=60)
        assert down.returncode == 0, down.stdout + down.stderr
        assert all(_gone(proc) for proc in started.values()), started
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{worker}/health", timeout=2)
    finally:
        leftover = [proc for proc in _started(stack_dir).values() if not _gone(proc)]
        if leftover:  # a failed run: stop what this test's `up` started, by pid
            _memestream(env, "down", timeout=60)
            for proc in leftover:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
