"""The local stack: its real services are up, healthy, loopback-only and reused on restart.

The shared stack is never stopped here (other tests use it); stop, stale pid files and
the SIGTERM-then-SIGKILL path are exercised on throwaway processes in a tmp stack dir.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
from confluent_kafka.admin import AdminClient

from domain.settings import Settings, get_settings
from memestream.stack import SERVICE_NAMES, ManagedProcess, ServiceError, Stack, State
from memestream.stack.health import host_port
from memestream.stack.layout import StackLayout
from memestream.stack.minio import MinioServer
from memestream.stack.nats import nats_ping
from memestream.stack.redis import RedisServer
from memestream.stack.stack import layout_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# The shared stack (started if needed, never stopped).


@pytest.fixture(scope="module")
def stack() -> Stack:
    stack = Stack(get_settings())
    stack.start()
    return stack


@pytest.mark.services
def test_kafka_answers_a_metadata_request(stack: Stack) -> None:
    settings = stack.settings
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    metadata = admin.list_topics(timeout=10)
    _, port = host_port(settings.kafka_bootstrap_servers, 9092)
    brokers = [(str(b.host), int(b.port)) for b in metadata.brokers.values()]
    assert brokers == [("127.0.0.1", port)]


@pytest.mark.services
def test_postgres_accepts_the_application_role(stack: Stack) -> None:
    with psycopg.connect(stack.settings.database_url, connect_timeout=5) as conn:
        row = conn.execute("select 1, current_user, current_database()").fetchone()
    assert row == (1, "memestream", "memestream")


@pytest.mark.services
def test_redis_answers_ping(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.settings.redis_url)
    try:
        assert client.ping() is True
    finally:
        client.close()


@pytest.mark.services
def test_minio_has_the_bucket(stack: Stack) -> None:
    minio = stack.services["minio"]
    assert isinstance(minio, MinioServer)
    assert minio.client().bucket_exists(stack.settings.s3_bucket)


@pytest.mark.services
def test_nats_runs_jetstream(stack: Stack) -> None:
    info = nats_ping(*host_port(stack.settings.nats_url, 4222))
    assert info["jetstream"] is True


@pytest.mark.services
def test_start_is_idempotent(stack: Stack) -> None:
    before = {st.name: st.pid for st in stack.status()}
    again = {st.name: st.pid for st in stack.start()}
    assert again == before


@pytest.mark.services
def test_status_reports_every_service_running_with_its_files(stack: Stack) -> None:
    statuses = stack.status()
    assert [st.name for st in statuses] == list(SERVICE_NAMES)
    for st in statuses:
        if st.name == "chdb":
            assert st.state is State.READY
            assert stack.layout.data("chdb").is_dir()
            continue
        assert st.state is State.RUNNING, st
        assert st.pid is not None
        assert st.log is not None and st.log.exists()
        assert stack.layout.data(st.name).exists()


@pytest.mark.services
def test_every_service_listens_on_loopback_only(stack: Stack) -> None:
    for st in stack.status():
        if st.pid is None:
            continue
        proc = psutil.Process(st.pid)
        sockets = [
            c
            for p in (proc, *proc.children(recursive=True))
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert sockets, st.name
        for conn in sockets:
            ip = ipaddress.ip_address(conn.laddr.ip)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            assert ip.is_loopback, (st.name, conn.laddr)


# Throwaway processes in a tmp stack dir.


@pytest.fixture
def tmp_settings(tmp_path: Path) -> Settings:
    return Settings(
        stack_dir=tmp_path / "stack",
        cache_dir=tmp_path / "cache",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )


@pytest.fixture
def throwaway_redis(tmp_settings: Settings) -> Iterator[RedisServer]:
    server = RedisServer(tmp_settings, layout_for(tmp_settings))
    yield server
    server.stop()


def test_redis_start_stop_cycle(throwaway_redis: RedisServer, tmp_settings: Settings) -> None:
    first = throwaway_redis.start()
    assert first.state is State.RUNNING and first.pid is not None
    assert first.log == tmp_settings.stack_path / "logs" / "redis.log"
    assert (tmp_settings.stack_path / "data" / "redis").is_dir()
    assert redis.Redis.from_url(tmp_settings.redis_url).ping()

    assert throwaway_redis.start().pid == first.pid

    stopped = throwaway_redis.stop()
    assert stopped.state is State.STOPPED and stopped.pid is None
    assert not psutil.pid_exists(first.pid)
    assert not (tmp_settings.stack_path / "run" / "redis.pid").exists()
    assert throwaway_redis.stop().state is State.STOPPED


def test_stale_pid_file_is_restarted(throwaway_redis: RedisServer) -> None:
    first = throwaway_redis.start()
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while throwaway_redis.process() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert throwaway_redis.status().state is State.STALE

    second = throwaway_redis.start()
    assert second.state is State.RUNNING
    assert second.pid not in (None, first.pid)


def test_a_server_we_did_not_start_is_reused_not_killed(
    throwaway_redis: RedisServer, tmp_settings: Settings, tmp_path: Path
) -> None:
    ours = throwaway_redis.start()
    other_settings = tmp_settings.model_copy(update={"stack_dir": tmp_path / "other"})
    other = RedisServer(other_settings, layout_for(other_settings))
    assert other.start().state is State.EXTERNAL
    assert other.stop().state is State.EXTERNAL
    assert throwaway_redis.status().pid == ours.pid


class Stubborn(ManagedProcess):
    """A process that ignores SIGTERM, to prove stop() escalates to SIGKILL."""

    stop_timeout = 1.0
    start_timeout = 10.0

    @property
    def url(self) -> str:
        return "-"

    def command(self) -> list[str]:
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
        return [sys.executable, "-c", code]

    def check_health(self) -> bool:
        return self.process() is not None


class Crashing(Stubborn):
    def command(self) -> list[str]:
        return [sys.executable, "-c", "print('boom: bad config', flush=True); raise SystemExit(3)"]

    def check_health(self) -> bool:
        return False


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    proc = Stubborn("stubborn", StackLayout(tmp_path, tmp_path / "cache"))
    started = proc.start()
    assert started.pid is not None
    t0 = time.monotonic()
    assert proc.stop().state is State.STOPPED
    assert time.monotonic() - t0 < 8
    assert not psutil.pid_exists(started.pid)


def test_a_crash_during_start_reports_the_log(tmp_path: Path) -> None:
    proc = Crashing("crashing", StackLayout(tmp_path, tmp_path / "cache"))
    with pytest.raises(ServiceError, match="boom: bad config"):
        proc.start()
    assert proc.status().state is State.STOPPED
