"""The replicated stack as a chaos `Platform` (loadgen/chaos.py): one node killed at a time.

`private_ha_platform` runs `memestream up --ha --detach` in a PRIVATE tmp folder on a free
block of ports (`HA_BASE_PORT`), never the shared stack, and `down --ha` after it.
`FailoverPlatform.inject` kills one node of the fault's kind with SIGKILL (the process group:
a pg_autoctl keeper takes its postgres with it) or, for `minio_drive_loss`, moves one
MinIO drive's folder away; `lift` waits until `hold_s` after the kill, then restarts the node
(or puts the folder back) as Kubernetes would, so the runner's figures measure the failover
(the other node taking over), not the restart. `noticed` says how the platform saw it: the
first new line matching the fault's pattern in the logs of whoever reacts (Sentinel's
`+switch-master`, the pg_auto_failover monitor's state changes, HAProxy marking a replica
DOWN, a Kafka node's new leader, the surviving render worker's new partitions).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

from domain.settings import PROJECT_ROOT, Settings
from loadgen.private_platform import bindable
from memestream.stack.ha import HaPorts, HaStack, ha_env
from memestream.stack.ha_apps import ha_apps
from memestream.stack.kafka import KafkaBroker
from memestream.stack.kafka_cluster import active_controller
from memestream.stack.minio_erasure import ErasureMinioServer
from memestream.stack.postgres_ha import WRITABLE_STATES, DataNode, MonitorNode
from memestream.stack.process import ManagedProcess

FAILOVER_FAULTS: tuple[str, ...] = (
    "kafka_broker_sigkill",
    "kafka_controller_sigkill",
    "postgres_primary_sigkill",
    "redis_master_sigkill",
    "minio_drive_loss",
    "api_replica_sigkill",
    "render_worker_sigkill",
)
ROLES = ("render", "trending", "analytics")  # inference (AI models) is not under test here
UP_TIMEOUT_S = 900.0
#: Which logs show the platform noticing each fault, and the line that says so.
NOTICE: dict[str, tuple[str, str]] = {
    "kafka_broker_sigkill": ("kafka-*.log", r"(?i)fenc|shrinking isr|isr.*shrink|leader.*elect"),
    "kafka_controller_sigkill": ("kafka-*.log", r"(?i)elected as leader|became leader|leader"),
    "postgres_primary_sigkill": ("ha-pg-monitor.log", r"(?i)promot|failover|demot"),
    "redis_master_sigkill": ("sentinel-*.log", r"\+switch-master|\+odown"),
    "minio_drive_loss": ("minio.log", r"(?i)drive|disk|offline"),
    "api_replica_sigkill": ("haproxy.log", r"(?i)is DOWN"),
    "render_worker_sigkill": ("worker-render*.log", r"(?i)newly assigned|rebalanc"),
}


#: The faults that kill their victim (a lost drive leaves MinIO running: its log is the notice).
KILLS = frozenset(FAILOVER_FAULTS) - {"minio_drive_loss"}


def free_ha_base() -> int:
    """A base port whose whole HA block (+0..+59) is free, below the ephemeral range."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 31_900, 100)
        if all(bindable(base + i) for i in range(60)):
            return base
    raise RuntimeError("no free block of ports for the HA stack")


def _memestream(log: Path, env: dict[str, str], *args: str, check: bool) -> None:
    """`memestream <args>` with `env`, its output in `log`."""
    with log.open("wb") as out:
        subprocess.run(
            [sys.executable, "-m", "memestream", *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=UP_TIMEOUT_S,
            check=check,
        )


@contextmanager
def private_ha_platform() -> Iterator[tuple[HaStack, dict[str, str]]]:
    """(stack, environment) of `up --ha` in a tmp folder on free ports; `down --ha` after.
    The environment is the HA settings' (`ha_env`): what a node restarted from this process
    must read, as under `up --ha`."""
    root = Path(tempfile.mkdtemp(prefix="ms-failover-", dir="/tmp"))
    env = {
        "STACK_DIR": str(root / "stack"),
        "HA_BASE_PORT": str(free_ha_base()),
        "PYTHONUNBUFFERED": "1",
    }
    full_env = {**os.environ, **env}
    roles = [arg for role in ROLES for arg in ("--role", role)]
    try:
        _memestream(root / "up.log", full_env, "up", "--ha", "--detach", *roles, check=True)
        settings = Settings(stack_dir=root / "stack", ha_base_port=int(env["HA_BASE_PORT"]))
        stack = HaStack(settings)
        yield stack, {**env, **ha_env(settings, stack.ports)}
    finally:
        _memestream(root / "down.log", full_env, "down", "--ha", check=False)
        for data in (root / "stack" / "ha" / "data").glob("*"):
            if data.is_symlink():  # a /var/tmp fallback of the postgres folders: ours
                shutil.rmtree(data.resolve().parent, ignore_errors=True)
        shutil.rmtree(root / "stack" / "ha" / "data", ignore_errors=True)


def sigkill(service: ManagedProcess) -> None:
    """kill -9 the service's process group (and a keeper's postmaster), then wait for it."""
    proc = service.process()
    if proc is None:
        return
    victims = [proc, *proc.children(recursive=True)]
    if isinstance(service, DataNode):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((service.pgdata / "postmaster.pid").read_text().split()[0])
            victims.append(psutil.Process(pid))
    for victim in victims:
        with contextlib.suppress(psutil.Error):
            victim.send_signal(signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    psutil.wait_procs(victims, timeout=15)


@dataclass
class Injected:
    fault: str
    at: float
    victim: str
    restore: object = None
    log_sizes: dict[Path, int] = field(default_factory=dict)


class FailoverPlatform:
    """The chaos runner's Platform over a running HA stack (and its `up --ha` apps)."""

    def __init__(self, stack: HaStack, hold_s: float = 20.0) -> None:
        self.stack = stack
        self.settings = stack.settings
        self.ports: HaPorts = stack.ports
        self.api_url = f"http://127.0.0.1:{stack.ports.api}"
        self.hold_s = hold_s
        self.apps = {
            app.name: app
            for app in ha_apps(stack.settings, stack.layout, stack.ports.api_replicas, ROLES)
        }
        self.current: Injected | None = None
        self.noticed: dict[str, str | None] = {}
        self.victims: dict[str, str] = {}

    # -- which node -------------------------------------------------------------------------

    def _brokers(self) -> list[KafkaBroker]:
        return [s for s in self.stack.services.values() if isinstance(s, KafkaBroker)]

    def _primary(self) -> DataNode:
        monitor = next(s for s in self.stack.services.values() if isinstance(s, MonitorNode))
        states = monitor.node_states()
        nodes = [s for s in self.stack.services.values() if isinstance(s, DataNode)]
        return next(n for n in nodes if set(states.get(n.port, ("", ""))) <= WRITABLE_STATES)

    def _redis_master(self) -> ManagedProcess:
        client = redis.Redis(host="127.0.0.1", port=self.ports.sentinels[0], socket_timeout=3)
        try:
            _, port = client.sentinel_get_master_addr_by_name(self.settings.redis_sentinel_master)
        finally:
            client.close()
        name = "redis-master" if int(port) == self.ports.redis_master else "redis-replica"
        return self._service(name)

    def _service(self, name: str) -> ManagedProcess:
        service = self.stack.services.get(name) or self.apps[name]
        assert isinstance(service, ManagedProcess)
        return service

    def _victim(self, fault: str) -> ManagedProcess:
        brokers = self._brokers()
        controller = active_controller(brokers)
        match fault:
            case "kafka_broker_sigkill":
                return next(b for b in brokers if b is not controller)
            case "kafka_controller_sigkill":
                assert controller is not None, "no KRaft quorum leader on record"
                return controller
            case "postgres_primary_sigkill":
                return self._primary()
            case "redis_master_sigkill":
                return self._redis_master()
            case "minio_drive_loss":
                return self._service("minio")
            case "api_replica_sigkill":
                return self.apps["api-1"]
            case "render_worker_sigkill":
                return self.apps["worker-render"]
        raise ValueError(f"unknown fault {fault!r}")

    # -- Platform ---------------------------------------------------------------------------

    def inject(self, fault: str) -> None:
        victim = self._victim(fault)
        pattern = NOTICE[fault][0]
        logs = self.stack.layout.root / "logs"
        sizes = {p: p.stat().st_size for p in logs.glob(pattern)}
        self.current = Injected(fault, time.monotonic(), victim.name, log_sizes=sizes)
        self.victims[fault] = victim.name
        if fault == "minio_drive_loss":
            assert isinstance(victim, ErasureMinioServer)
            drive = victim.drive_paths()[0]
            hidden = drive.with_name(drive.name + ".lost")
            drive.rename(hidden)
            self.current.restore = (hidden, drive)
            return
        sigkill(victim)

    def lift(self, fault: str) -> None:
        current = self.current
        assert current is not None and current.fault == fault
        time.sleep(max(0.0, current.at + self.hold_s - time.monotonic()))
        self.noticed[fault] = self._notice(current)
        if fault == "minio_drive_loss":
            hidden, drive = current.restore  # type: ignore[misc]
            if drive.exists():  # MinIO formatted a fresh drive in its place and heals onto it
                shutil.rmtree(hidden)
            else:
                hidden.rename(drive)
        else:
            self._service(current.victim).start()
        self.current = None

    def supervise(self) -> list[str]:
        """Restarts a store or app that died outside the fault window."""
        restarted = []
        for service in [*self.stack.services.values(), *self.apps.values()]:
            if isinstance(service, ManagedProcess) and service.process() is None:
                with contextlib.suppress(Exception):
                    service.start()
                    restarted.append(service.name)
        return restarted

    def _notice(self, current: Injected) -> str | None:
        """The first line the fault's watchers wrote since the kill that matches its pattern."""
        regex = re.compile(NOTICE[current.fault][1])
        logs = self.stack.layout.root / "logs"
        for path in sorted(logs.glob(NOTICE[current.fault][0])):
            if path.name.startswith(current.victim + ".") and current.fault in KILLS:
                continue  # the dead node's own last words are not the platform noticing
            with path.open("rb") as fh:
                fh.seek(current.log_sizes.get(path, 0))
                for raw in fh:
                    line = raw.decode(errors="replace").strip()
                    if regex.search(line):
                        return f"{path.name}: {line[:300]}"
        return None
