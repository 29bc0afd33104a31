"""A supervised background process: pid file, log file, health check, idempotent start/stop.

Every local service (and the API and worker that `memestream up --detach` leaves behind)
is one of these. The pid file records the process's start time as well as its pid, so a
recycled pid is never mistaken for our server. Starting is idempotent: a healthy process
is reused, a stale pid file is cleared and the service restarted, and a port already
served by someone else is reported as `external` instead of fighting over it. Stopping
sends the service's polite signal, waits, then SIGKILLs the whole process group.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import signal
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypedDict

import psutil
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential

from memestream.stack.health import port_open
from memestream.stack.layout import StackLayout


class ServiceError(RuntimeError):
    """A service could not be prepared, started or stopped; the message says why."""


class NotReady(ServiceError):
    """A wait ran out of time (as opposed to a process that died)."""


class State(StrEnum):
    RUNNING = "running"  # our process, and it passes its health check
    STARTING = "starting"  # our process is alive but not healthy (yet)
    STOPPED = "stopped"
    STALE = "stale"  # a pid file whose process is gone
    EXTERNAL = "external"  # healthy, but not a process this stack started
    READY = "ready"  # in-process stores: nothing to run, folder in place


@dataclass(frozen=True, slots=True)
class Status:
    name: str
    url: str
    state: State
    pid: int | None
    log: Path | None

    @property
    def up(self) -> bool:
        return self.state in (State.RUNNING, State.EXTERNAL, State.READY)


class Service(ABC):
    """Anything `memestream stack` can start, stop and report on."""

    name: str

    @abstractmethod
    def start(self) -> Status: ...

    @abstractmethod
    def stop(self) -> Status: ...

    @abstractmethod
    def status(self) -> Status: ...


def wait_until(
    check: Callable[[], bool], timeout: float, *, what: str, max_interval: float = 1.0
) -> None:
    """Poll `check` with backoff until it is true; an exception from it aborts at once."""
    ok = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.05, max=max_interval),
        retry=retry_if_result(lambda ok: not ok),
        retry_error_callback=lambda _state: False,
    )(check)
    if not ok:
        raise NotReady(f"{what}: not ready after {timeout:.0f}s")


def tail(path: Path, lines: int = 20) -> str:
    """The end of a log, for error messages that point at the real cause."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise start/stop of one service across processes (CLI, tests, make)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# Popen handles of processes this interpreter started: kept so they are reaped (no zombies
# while a long-lived `up` or test session runs) and never garbage-collected while running.
_children: dict[int, subprocess.Popen[bytes]] = {}
_children_lock = threading.Lock()


class PopenUser(TypedDict, total=False):
    """The `subprocess` arguments that switch the child to another account."""

    user: int
    group: int
    extra_groups: list[int]


@dataclass(frozen=True, slots=True)
class SystemUser:
    """The account a service runs as (PostgreSQL refuses to run as root)."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def lookup(cls, name: str) -> SystemUser:
        try:
            entry = pwd.getpwnam(name)
        except KeyError as exc:
            raise ServiceError(f"system user {name!r} does not exist") from exc
        return cls(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    def popen_kwargs(self) -> PopenUser:
        """Drop privileges in the child; only meaningful (and allowed) when we are root."""
        if os.geteuid() != 0:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def env(self) -> dict[str, str]:
        if os.geteuid() != 0:
            return {}
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}


class ManagedProcess(Service):
    """A long-running server process supervised through a pid file.

    Subclasses give the command line, the health check and optional `prepare` (download,
    init, config: idempotent) and `after_start` (bucket, role: idempotent) steps.
    """

    start_timeout: float = 60.0
    stop_timeout: float = 30.0
    stop_signal: signal.Signals = signal.SIGTERM
    # A process must stay alive this long after its health check first passes; catches
    # programs (like a worker with a broken import) that come up and die at once.
    min_uptime: float = 0.0

    def __init__(self, name: str, layout: StackLayout) -> None:
        self.name = name
        self.layout = layout

    # What subclasses describe.

    @property
    @abstractmethod
    def url(self) -> str: ...

    @property
    def port(self) -> int | None:
        """The main listening port, used to spot a server that is not ours."""
        return None

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def check_health(self) -> bool:
        """One real protocol round trip; may raise, `healthy()` turns that into False."""

    def env(self) -> Mapping[str, str]:
        return {}

    def cwd(self) -> Path:
        return self.data_dir

    def run_as(self) -> SystemUser | None:
        return None

    def prepare(self) -> None:
        """Download, build, initialise and write config; must be idempotent."""

    def after_start(self) -> None:
        """Create what the platform expects inside the running server; idempotent."""

    # Paths.

    @property
    def data_dir(self) -> Path:
        return self.layout.data(self.name)

    @property
    def log_path(self) -> Path:
        return self.layout.log(self.name)

    @property
    def console_log_path(self) -> Path:
        """Where the process's stdout and stderr go (Kafka logs elsewhere through log4j)."""
        return self.log_path

    @property
    def pid_path(self) -> Path:
        return self.layout.pid(self.name)

    # Health and process lookup.

    def healthy(self) -> bool:
        port = self.port
        if port is not None and not port_open("127.0.0.1", port):
            return False
        try:
            return bool(self.check_health())
        except Exception:
            return False

    def _read_pid(self) -> tuple[int, float] | None:
        try:
            record = json.loads(self.pid_path.read_text())
            return int(record["pid"]), float(record["create_time"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def process(self) -> psutil.Process | None:
        """Our live process, or None if there is no pid file or it is stale."""
        record = self._read_pid()
        if record is None:
            return None
        pid, created = record
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) > 1.0:
                return None  # the pid was recycled by an unrelated process
            if proc.status() == psutil.STATUS_ZOMBIE:
                self._reap(pid)
                return None
        except psutil.Error:
            return None
        return proc

    def status(self) -> Status:
        proc = self.process()
        healthy = self.healthy()
        if proc is not None:
            state = State.RUNNING if healthy else State.STARTING
        elif healthy:
            state = State.EXTERNAL
        elif self.pid_path.exists():
            state = State.STALE
        else:
            state = State.STOPPED
        pid = proc.pid if proc is not None else None
        return Status(self.name, self.url, state, pid, self.log_path)

    # Start and stop.

    def start(self) -> Status:
        self.layout.ensure(self.name)
        with file_lock(self.layout.lock(self.name)):
            proc = self.process()
            if proc is not None:
                if self.healthy():
                    return self.status()
                try:  # maybe still starting or recovering: give it its start timeout
                    self._wait_healthy(proc.pid)
                    return self.status()
                except ServiceError:
                    self._terminate(proc)
            self.pid_path.unlink(missing_ok=True)
            port = self.port
            if port is not None and port_open("127.0.0.1", port):
                if self.healthy():
                    return self.status()  # someone else's server: reuse it, never kill it
                raise ServiceError(
                    f"{self.name}: port {port} is in use by a process this stack did not start"
                )
            self.prepare()
            pid = self._spawn()
            try:
                self._wait_healthy(pid)
                self.after_start()
            except BaseException:
                with contextlib.suppress(psutil.Error):
                    self._terminate(psutil.Process(pid))
                self.pid_path.unlink(missing_ok=True)
                raise
            return self.status()

    def stop(self) -> Status:
        with file_lock(self.layout.lock(self.name)):
            proc = self.process()
            if proc is not None:
                self._terminate(proc)
            self.pid_path.unlink(missing_ok=True)
            return self.status()

    def _spawn(self) -> int:
        user = self.run_as()
        env = {**os.environ, **(user.env() if user else {}), **self.env()}
        argv = self.command()
        self.console_log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.console_log_path.open("ab") as log:
            log.write(f"\n--- {time.strftime('%F %T')} starting: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd(),
                    env=env,
                    start_new_session=True,  # own process group: Ctrl-C in a shell skips it
                    **(user.popen_kwargs() if user else PopenUser()),
                )
            except OSError as exc:
                raise ServiceError(f"{self.name}: cannot run {argv[0]}: {exc}") from exc
        with _children_lock:
            _children[popen.pid] = popen
        created = psutil.Process(popen.pid).create_time()
        tmp = self.pid_path.with_suffix(".pid.tmp")
        tmp.write_text(json.dumps({"pid": popen.pid, "create_time": created, "argv": argv}))
        tmp.replace(self.pid_path)
        return popen.pid

    def _alive(self, pid: int) -> bool:
        with _children_lock:
            popen = _children.get(pid)
        if popen is not None:
            return popen.poll() is None
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def _wait_healthy(self, pid: int) -> None:
        def check() -> bool:
            if not self._alive(pid):
                raise ServiceError(
                    f"{self.name} exited during start; end of {self.console_log_path}:\n"
                    f"{tail(self.console_log_path)}"
                )
            return self.healthy()

        try:
            wait_until(check, self.start_timeout, what=self.name)
        except NotReady as exc:
            raise NotReady(
                f"{exc}; end of {self.console_log_path}:\n{tail(self.console_log_path)}"
            ) from exc
        if self.min_uptime:
            time.sleep(self.min_uptime)
            if not self._alive(pid):
                raise ServiceError(
                    f"{self.name} exited right after starting; end of {self.console_log_path}:"
                    f"\n{tail(self.console_log_path)}"
                )

    def _terminate(self, proc: psutil.Process) -> None:
        """Polite signal, wait, then SIGKILL everything left in the process group."""
        try:
            family = [proc, *proc.children(recursive=True)]
            pgid = os.getpgid(proc.pid)
        except (psutil.Error, ProcessLookupError):
            self._reap(proc.pid)
            return
        with contextlib.suppress(psutil.Error):
            proc.send_signal(self.stop_signal)
        self._wait_gone([proc], self.stop_timeout)
        if pgid == proc.pid:  # we made it a session leader: the group is all ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        for p in family:
            with contextlib.suppress(psutil.Error):
                p.kill()
        self._wait_gone(family, 10.0)
        self._reap(proc.pid)

    def _wait_gone(self, procs: Sequence[psutil.Process], timeout: float) -> bool:
        """Wait until every process has exited; a zombie counts as gone (its parent,
        often a slow init, reaps it later), so stop() does not wait on someone else."""
        deadline = time.monotonic() + timeout
        pending = list(procs)
        while pending:
            pending = [p for p in pending if self._alive(p.pid)]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        return not pending

    @staticmethod
    def _reap(pid: int) -> None:
        with _children_lock:
            popen = _children.pop(pid, None)
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=1)
