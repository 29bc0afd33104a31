"""A private copy of the stores, API and workers for tests that break things.

Chaos and poison-event tests stop stores, kill workers and wedge partitions, which must never
touch the shared stack teammates' tests use. `PrivateStack` starts Kafka, PostgreSQL and Redis
from memestream/stack on free ports under a tmp folder, stores images on the filesystem
(so a tmpfs can fill up), and starts API and worker subprocesses pointed at them.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from domain.settings import PROJECT_ROOT, Settings, StorageBackend
from loadgen.private_platform import bindable
from memestream.stack.stack import Stack

ARTIFACTS = PROJECT_ROOT / "artifacts" / "chaos"
SERVICES = ["kafka", "postgres", "redis"]


def free_port(pair: bool = False) -> int:
    """A free port below the kernel's ephemeral range (so load tests' client sockets never
    take it); with `pair`, its successor is free too (Kafka's controller port)."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(20_000, 32_000)
        if bindable(port) and (not pair or bindable(port + 1)):
            return port
    raise RuntimeError("no free port")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    prefix: str = ""  # a worker's consumer group prefix

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class PrivateStack:
    root: Path
    settings: Settings
    stack: Stack
    procs: list[Proc] = field(default_factory=list)
    # Every store process this stack ever started: Redis renames its process title and
    # PostgreSQL may live outside `root`, so the command line alone cannot find them.
    store_pids: set[int] = field(default_factory=set)

    @classmethod
    def create(cls) -> PrivateStack:
        root = Path(tempfile.mkdtemp(prefix="ms-private-", dir="/tmp"))
        settings = Settings(
            stack_dir=root / "stack",
            kafka_bootstrap_servers=f"127.0.0.1:{free_port(pair=True)}",
            database_url=(f"postgresql://memestream:memestream@127.0.0.1:{free_port()}/memestream"),
            redis_url=f"redis://127.0.0.1:{free_port()}/0",
            s3_endpoint_url="http://127.0.0.1:1",
            storage_backend=StorageBackend.FILESYSTEM,
            storage_path=root / "objects",
            clickhouse_url=f"chdb://{root}/chdb-pytest",
            nats_url="nats://127.0.0.1:1",
            kafka_delivery_timeout_ms=5000,
        )
        return cls(root, settings, Stack(settings))

    def start(self, services: list[str] | None = None) -> None:
        statuses = self.stack.start(services or SERVICES)
        self.store_pids |= {st.pid for st in statuses if st.pid}

    def stop(self, services: list[str]) -> None:
        self.stack.stop(services)

    def prepare(self) -> None:
        from producers.admin import ensure_topics
        from sinks.postgres import migrate

        migrate(self.settings)
        ensure_topics(self.settings)
        (self.root / "objects").mkdir(exist_ok=True)

    def env(self, name: str) -> dict[str, str]:
        s = self.settings
        return {
            "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
            "DATABASE_URL": s.database_url,
            "REDIS_URL": s.redis_url,
            "S3_ENDPOINT_URL": s.s3_endpoint_url,
            "STORAGE_BACKEND": "filesystem",
            "STORAGE_PATH": str(s.storage_path),
            "CLICKHOUSE_URL": f"chdb://{self.root}/chdb-{name}",
            "NATS_URL": s.nats_url,
            "STACK_DIR": str(s.stack_dir),
            "KAFKA_DELIVERY_TIMEOUT_MS": str(s.kafka_delivery_timeout_ms),
            "RATE_LIMIT_ENABLED": "false",
            # Delivery is under test, not models: keep the 2 cores for rendering.
            "AI_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        log = ARTIFACTS / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, *args],
                cwd=PROJECT_ROOT,
                env={**os.environ, **self.env(name), **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def api(self, name: str = "api", **env: str) -> tuple[str, Proc]:
        port = free_port()
        args = ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)]
        proc = self.spawn(name, args, {"API_PORT": str(port), **env})
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{name} exited: {proc.output()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code < 500:
                    return url, proc
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{name} did not answer")

    def worker(
        self,
        name: str,
        prefix: str | None = None,
        role: str = "render",
        wait: bool = True,
        replaces: set[str] | None = None,
        **env: str,
    ) -> tuple[str, Proc]:
        """A worker in group `<prefix>-<role>` (a fresh prefix unless given); with `replaces`
        (member ids of dead workers), wait until the group has rebalanced without them."""
        from producers.roles import ROLES

        if prefix is None:
            prefix = f"chaos-{uuid.uuid4().hex[:6]}"
            self.start_group_at_end(ROLES[role].group_id_for(prefix), ROLES[role].topics)
        args = ["-m", "streams", "worker", "--role", role]
        proc = self.spawn(
            name,
            args,
            {
                "WORKER_WEB_PORT": str(free_port() - list(ROLES).index(role)),
                "CONSUMER_GROUP_PREFIX": prefix,
                "KAFKA_AUTO_OFFSET_RESET": "latest",
                "KAFKA_SESSION_TIMEOUT_S": "10",
                **env,
            },
        )
        proc.prefix = prefix
        if wait:
            self.wait_group(ROLES[role].group_id_for(prefix), proc, without=replaces)
        return prefix, proc

    def start_group_at_end(self, group: str, topics: tuple[str, ...], timeout: float = 60) -> None:
        """Commit the topics' current ends for a new group: it reads only what comes next,
        and a replacement worker resumes from commits (poison left by earlier tests in this
        private Kafka stays behind it). Retried until the offsets read back: a fresh broker
        answers NOT_LEADER / COORDINATOR_LOAD_IN_PROGRESS for a while."""
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        deadline = time.monotonic() + timeout
        while True:
            consumer = Consumer(
                {
                    "bootstrap.servers": self.settings.kafka_bootstrap_servers,
                    "group.id": group,
                    "enable.auto.commit": False,
                }
            )
            try:
                metadata = consumer.list_topics(timeout=10).topics
                wanted = []
                for topic in topics:
                    for partition in metadata[topic].partitions:
                        tp = TopicPartition(topic, partition)
                        _, high = consumer.get_watermark_offsets(tp, timeout=10)
                        wanted.append(TopicPartition(topic, partition, high))
                consumer.commit(offsets=wanted, asynchronous=False)
                got = consumer.committed([TopicPartition(t.topic, t.partition) for t in wanted])
                if [t.offset for t in got] == [t.offset for t in wanted]:
                    return
            except (KafkaException, KeyError):
                if time.monotonic() > deadline:
                    raise
            finally:
                consumer.close()
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not commit start offsets for {group}")
            time.sleep(1.0)

    def members(self, group: str) -> set[str]:
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap_servers})
        desc = admin.describe_consumer_groups([group])[group].result(timeout=5)
        return {m.member_id for m in desc.members}

    def wait_group(
        self, group: str, proc: Proc, timeout: float = 90, without: set[str] | None = None
    ) -> None:
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap_servers})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited: {proc.output()[-2000:]}")
            try:
                desc = admin.describe_consumer_groups([group])[group].result(timeout=5)
                current = {m.member_id for m in desc.members}
                gone = without or set()
                if desc.state == ConsumerGroupState.STABLE and current and not current & gone:
                    return
            except Exception:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"group {group} not stable")

    def kill(self, proc: Proc, sig: int | None = None) -> None:
        if proc.alive():
            if sig is None:
                proc.popen.terminate()
            else:
                proc.popen.send_signal(sig)
            try:
                proc.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()

    def close(self) -> None:
        for proc in reversed(self.procs):
            self.kill(proc)
        try:
            self.stack.stop(SERVICES)
        finally:
            self._kill_leftovers()
            subprocess.run(["umount", "-l", str(self.root / "objects")], capture_output=True)
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """Stores this stack started that outlived `stop` (a broker restarted mid-test):
        found by this stack's own unique tmp folder in their command line."""
        root = str(self.root)
        mine = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if proc.pid in self.store_pids or any(
                root in part for part in proc.info.get("cmdline") or []
            ):
                mine.append(proc)
        for proc in mine:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(mine, timeout=15)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()


@contextmanager
def running_private_stack(attempts: int = 3) -> Iterator[PrivateStack]:
    """Started stores; a start that fails (a port taken meanwhile, a slow JVM) is retried
    on fresh ports and a fresh folder."""
    for attempt in range(1, attempts + 1):
        stack = PrivateStack.create()
        try:
            stack.start()
            stack.prepare()
        except Exception:
            (ARTIFACTS / f"private-start-{attempt}.log").parent.mkdir(parents=True, exist_ok=True)
            for log in (stack.root / "stack" / "logs").glob("*.log"):
                shutil.copy(log, ARTIFACTS / f"private-start-{attempt}-{log.name}")
            stack.close()
            if attempt == attempts:
                raise
            continue
        break
    try:
        yield stack
    finally:
        stack.close()
