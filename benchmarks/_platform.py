"""Runs a private API and render worker(s) against the configured stores for a benchmark.

The worker gets its own consumer group (starting at the topic's end), so it neither takes
partitions from a running `memestream up` nor renders old requests; the API and worker logs
go to `artifacts/bench/`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import httpx
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from domain.settings import PROJECT_ROOT, Settings

LOGS = PROJECT_ROOT / "artifacts" / "bench"


@dataclass(frozen=True, slots=True)
class Platform:
    api_url: str
    group_prefix: str
    pids: dict[str, int]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def store_env(settings: Settings) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "CLICKHOUSE_URL": settings.clickhouse_url,
        "LOG_LEVEL": "WARNING",
        # Benchmarks measure capacity; one client IP would otherwise be rate-limited.
        "RATE_LIMIT_ENABLED": "false",
    }


@contextmanager
def _process(name: str, args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}; see {LOGS}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def _wait_group(
    bootstrap: str, group: str, members: int, procs: list[subprocess.Popen[bytes]]
) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a worker exited; see {LOGS}")
        desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
        if desc.state == ConsumerGroupState.STABLE and len(desc.members) >= members:
            return
        time.sleep(0.5)
    raise TimeoutError(f"consumer group {group} not stable")


@contextmanager
def platform(settings: Settings, workers: int = 1) -> Iterator[Platform]:
    from streams.roles import RENDER

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    with ExitStack() as stack:
        api = stack.enter_context(
            _process(
                "api",
                ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)],
                store_env(settings) | {"API_PORT": str(port)},
            )
        )
        procs = []
        for i in range(workers):
            env = store_env(settings) | {
                "WORKER_WEB_PORT": str(free_port()),
                "CONSUMER_GROUP_PREFIX": prefix,
                "KAFKA_AUTO_OFFSET_RESET": "latest",
            }
            args = ["-m", "streams", "worker", "--role", "render"]
            procs.append(stack.enter_context(_process(f"worker-render-{i}", args, env)))
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/health", api)
        _wait_group(settings.kafka_bootstrap_servers, RENDER.group_id_for(prefix), workers, procs)
        pids = {"api": api.pid} | {f"worker-render-{i}": p.pid for i, p in enumerate(procs)}
        yield Platform(url, prefix, pids)
