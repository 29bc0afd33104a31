"""Runs a private API and render worker(s) against the configured stores for a benchmark.

The worker gets its own consumer group (starting at the topic's end), so it neither takes
partitions from a running `memestream up` nor renders old requests. Processes are started
and awaited by the same helpers the end-to-end tests use (`memestream/testing/processes.py`);
their logs go to `artifacts/`.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from domain.settings import Settings
from memestream.testing.processes import free_port, process, wait_for_http


@dataclass(frozen=True, slots=True)
class Platform:
    api_url: str
    group_prefix: str
    pids: dict[str, int]


def store_env(settings: Settings) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "CLICKHOUSE_URL": settings.clickhouse_url,
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
        "LOG_LEVEL": "WARNING",
        # Benchmarks measure capacity; one client IP would otherwise be rate-limited.
        "RATE_LIMIT_ENABLED": "false",
    }


def _wait_group(
    bootstrap: str, group: str, members: int, procs: list[subprocess.Popen[bytes]]
) -> None:
    """Until all `members` render workers share the group (tests wait for one only)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a worker exited; see artifacts/")
        try:
            desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
        except (TimeoutError, KafkaException):  # a broker still creating its offsets topic
            time.sleep(0.5)
            continue
        if desc.state == ConsumerGroupState.STABLE and len(desc.members) >= members:
            return
        time.sleep(0.5)
    raise TimeoutError(f"consumer group {group} not stable")


@contextmanager
def platform(settings: Settings, workers: int = 1) -> Iterator[Platform]:
    from producers.roles import RENDER

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    with ExitStack() as stack:
        api = stack.enter_context(
            process(
                "bench-api",
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
            procs.append(stack.enter_context(process(f"bench-worker-render-{i}", args, env)))
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health", api)
        group = RENDER.group_id_for(prefix)
        _wait_group(settings.kafka_bootstrap_servers, group, workers, procs)
        pids = {"api": api.pid} | {f"worker-render-{i}": p.pid for i, p in enumerate(procs)}
        yield Platform(url, prefix, pids)
