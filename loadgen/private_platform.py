"""A private `memestream up` for load runs: its own stack folder and its own ports.

Why private: the shared stack carries other sessions' tests and their residue (consumer lag,
rows, cache entries), which would mix into a run's figures, and a load run must never stop or
reconfigure it. `memestream up` started with another `STACK_DIR` and free ports for every store,
the API and the workers' web ports starts, migrates and runs a whole platform of its own; leaving
the context sends it SIGTERM, and `up` stops what it started (every store, since none ran);
the stores' data is then deleted and the logs are kept (`/tmp/ms-load-<scenario>-*/`).
The environment it was given is returned, so the replay reads the same stores.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from domain.settings import PROJECT_ROOT
from producers.roles import WORKER_ROLES

START_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 120.0


def bindable(port: int) -> bool:
    """Whether a listener could bind `port` on loopback now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_block(size: int, taken: set[int]) -> int:
    """The first of `size` consecutive free ports below the ephemeral range (client sockets
    of a load run never take them), none of them in `taken`."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20_000, 32_000 - size)
        block = set(range(port, port + size))
        if not block & taken and all(bindable(p) for p in block):
            taken |= block
            return port
    raise RuntimeError("no free ports")


def environment(root: Path, **extra: str) -> dict[str, str]:
    """Settings of a private platform under `root`: every URL on its own free port(s)."""
    taken: set[int] = set()
    kafka, postgres, redis = free_block(2, taken), free_block(1, taken), free_block(1, taken)
    minio, nats, registry = free_block(2, taken), free_block(1, taken), free_block(2, taken)
    api, web = free_block(1, taken), free_block(len(WORKER_ROLES) + 1, taken)
    return {
        "STACK_DIR": str(root / "stack"),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "DATABASE_URL": f"postgresql://memestream:memestream@127.0.0.1:{postgres}/memestream",
        "REDIS_URL": f"redis://127.0.0.1:{redis}/0",
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{minio}",
        "NATS_URL": f"nats://127.0.0.1:{nats}",
        "SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{registry}/apis/ccompat/v7",
        "CLICKHOUSE_URL": f"chdb://{root}/stack/data/chdb",
        "API_PORT": str(api),
        "WORKER_WEB_PORT": str(web),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@contextmanager
def private_platform(name: str, **extra: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(API base URL, environment) of a platform started for this block, stopped after it."""
    root = Path(tempfile.mkdtemp(prefix=f"ms-load-{name}-", dir="/tmp"))
    env = environment(root, **extra)
    log = root / "up.log"
    url = f"http://127.0.0.1:{env['API_PORT']}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memestream", "up"],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(proc, url, log)
        yield url, env
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # The stores' data (GBs after the memory scenario's uploads) goes; the logs stay.
        shutil.rmtree(root / "stack" / "data", ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Until `up` says it runs (all started) and the API answers its readiness probe."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"memestream up exited {proc.returncode}; see {log}")
        if b"press Ctrl-C to stop" in log.read_bytes():
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(2)
    raise RuntimeError(f"the private platform was not ready in {START_TIMEOUT_S:g} s; see {log}")
