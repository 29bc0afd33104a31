"""Starts the API and workers as real subprocesses for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import tenacity
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from domain.settings import PROJECT_ROOT

ARTIFACTS = PROJECT_ROOT / "artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_web_port(role: str) -> tuple[int, str]:
    """A free port for a role's worker, and the WORKER_WEB_PORT that makes it bind there
    (streams/app.py offsets the base by the role's index)."""
    from producers.roles import WORKER_ROLES

    port = free_port()
    return port, str(port - WORKER_ROLES.index(role))


def log_path(name: str) -> Path:
    """One log per test process, so concurrent test runs never overwrite each other."""
    return ARTIFACTS / f"{name}-{os.getpid()}.log"


@contextmanager
def process(
    name: str, args: list[str], env: Mapping[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    ARTIFACTS.mkdir(exist_ok=True)
    with log_path(name).open("wb") as log:
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
            stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; waits either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def wait_for_group(
    bootstrap: str, group_id: str, proc: subprocess.Popen[bytes], timeout: float = 120.0
) -> None:
    """Waits until the consumer group is stable, i.e. the worker owns its partitions."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        try:
            future = admin.describe_consumer_groups([group_id])[group_id]
            description = future.result(timeout=10)
        except (TimeoutError, KafkaException):
            # A broker that has just started is still creating __consumer_offsets.
            time.sleep(0.5)
            continue
        if description.state == ConsumerGroupState.STABLE and description.members:
            return
        time.sleep(0.5)
    raise TimeoutError(f"consumer group {group_id} not stable within {timeout}s")


def pin_group_offsets(
    bootstrap: str, group: str, topics: Iterable[str]
) -> dict[tuple[str, int], int]:
    """Commits the topics' current ends for a new group before its worker starts.

    With "latest" and no commits, a worker picks its start only at its first fetch, after the
    group is already stable, and misses what a test produced in between. Retried while the
    broker is still electing the leaders of topics it has just created.
    """
    ends = _topic_ends(bootstrap, group, tuple(topics))
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = [ConsumerGroupTopicPartitions(group, ends)]
    admin.alter_consumer_group_offsets(request)[group].result(timeout=30)
    return {(tp.topic, tp.partition): tp.offset for tp in ends}


_ELECTING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TIMED_OUT,
    }
)


def _retriable(exc: BaseException) -> bool:
    if not isinstance(exc, KafkaException):
        return False
    error = exc.args[0]
    return bool(error.retriable()) or error.code() in _ELECTING


@tenacity.retry(
    retry=tenacity.retry_if_exception(_retriable),
    wait=tenacity.wait_fixed(0.5),
    stop=tenacity.stop_after_delay(60),
    reraise=True,
)
def _topic_ends(bootstrap: str, group: str, topics: tuple[str, ...]) -> list[TopicPartition]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        metadata = consumer.list_topics(timeout=10)
        return [
            TopicPartition(t, p, consumer.get_watermark_offsets(TopicPartition(t, p), 10)[1])
            for t in topics
            for p in sorted(metadata.topics[t].partitions)
        ]
    finally:
        consumer.close()


@contextmanager
def memestream_api(settings: Any, name: str, **env: str) -> Iterator[str]:
    """The API as `memestream api` runs it (memestream/stack/apps.py's uvicorn command line:
    slow-client timeouts, FORWARDED_ALLOW_IPS), on a free port; yields its URL."""
    from memestream.stack.apps import api_command
    from memestream.testing.environment import environment

    port = free_port()
    full = environment(settings) | {"API_PORT": str(port)} | env
    edge = {
        "api_port": port,
        "api_host": "127.0.0.1",
        "forwarded_allow_ips": full.get("FORWARDED_ALLOW_IPS", ""),
    }
    argv = api_command(settings.model_copy(update=edge))
    with process(name, argv[1:], full) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health", proc)
        yield url


@contextmanager
def inference_worker(env: Mapping[str, str], timeout: float = 300.0) -> Iterator[str]:
    """An inference worker subprocess (`python -m streams worker --role inference`) with `env`
    on top of the test's; yields its web URL once `/health` says it has joined the queue group
    (after warming its models)."""
    from producers.roles import INFERENCE

    port, base = worker_web_port(INFERENCE)
    args = ["-m", "streams", "worker", "--role", INFERENCE]
    with process("worker-inference", args, {**env, "WORKER_WEB_PORT": base}) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health", proc, timeout=timeout)
        yield url


def metric_value(url: str, name: str, **labels: str) -> float:
    """One sample of a process' `/metrics` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        if series == name and not wanted:
            return float(value)
        if series.startswith(f"{name}{{"):
            got = ",".join(sorted(series[len(name) + 1 : -1].split(",")))
            if got == wanted:
                return float(value)
    return 0.0
