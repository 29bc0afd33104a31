"""PostgreSQL 15 from Debian's packages, one private cluster per stack directory.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to the
`postgres` system user. Layout: `<stack>/data/postgres/pgdata` is the cluster and
`<stack>/data/postgres/socket` its unix socket folder. Local socket connections are
trusted (that is how the stack creates the application role); TCP on 127.0.0.1 needs the
password from `database_url`. Durability settings stay at PostgreSQL's defaults.

If the `postgres` user cannot reach the stack folder (a clone under a private home such
as /root), the cluster lives under /var/tmp and `<stack>/data/postgres` is a symlink to it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from domain.settings import Settings
from memestream.stack.layout import StackLayout
from memestream.stack.process import (
    ManagedProcess,
    PopenUser,
    ServiceError,
    SystemUser,
    tail,
)

PG_MAJOR = 15
PG_BIN = Path(os.environ.get("MEMESTREAM_PG_BIN", f"/usr/lib/postgresql/{PG_MAJOR}/bin"))
SUPERUSER = "postgres"
FALLBACK_ROOT = Path("/var/tmp")
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; PostgreSQL appends /.s.PGSQL.<port>


def postgres_command(
    pgdata: Path, port: int, socket_dir: Path, settings: dict[str, str] | None = None
) -> list[str]:
    """A `postgres` server on loopback only, its socket in `socket_dir`, logging to stderr
    (the service's log file), with `settings` as extra `-c` options."""
    options = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(socket_dir),
        "shared_buffers": "128MB",
        "logging_collector": "off",
        **(settings or {}),
    }
    command = [str(PG_BIN / "postgres"), "-D", str(pgdata)]
    for name, value in options.items():
        command += ["-c", f"{name}={value}"]
    return command


class PostgresServer(ManagedProcess):
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for clients to leave
    start_timeout = 90.0
    stop_timeout = 60.0

    def __init__(self, settings: Settings, layout: StackLayout) -> None:
        super().__init__("postgres", layout)
        params = conninfo_to_dict(settings.database_url)
        self.database_url = settings.database_url
        self._port = int(params.get("port") or 5432)
        self.app_user = str(params.get("user") or "memestream")
        self.app_password = str(params.get("password") or "")
        self.app_db = str(params.get("dbname") or self.app_user)

    @property
    def url(self) -> str:
        return f"postgresql://127.0.0.1:{self._port}/{self.app_db}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def home(self) -> Path:
        """`<stack>/data/postgres` with any fallback symlink resolved: the path the
        `postgres` user can actually reach."""
        return self.data_dir.resolve()

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.home / "socket"

    def run_as(self) -> SystemUser | None:
        return postgres_user()

    def cwd(self) -> Path:
        return self.home

    def command(self) -> list[str]:
        return postgres_command(
            self.pgdata, self._port, self.socket_dir, {"max_connections": "200"}
        )

    def prepare(self) -> None:
        if not (PG_BIN / "postgres").exists():
            raise ServiceError(
                f"PostgreSQL {PG_MAJOR} not in {PG_BIN}: apt-get install postgresql-{PG_MAJOR}"
            )
        user = self.run_as()
        place_data_dir(self.data_dir, user)
        for folder in (self.home, self.pgdata, self.socket_dir):
            folder.mkdir(exist_ok=True)
            if user is not None:
                os.chown(folder, user.uid, user.gid)
            folder.chmod(0o700)
        if len(str(self.socket_dir)) + len(f"/.s.PGSQL.{self._port}") > SOCKET_PATH_MAX:
            raise ServiceError(f"socket path under {self.socket_dir} is too long for a unix socket")
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(user)

    def _initdb(self, user: SystemUser | None) -> None:
        argv = [
            str(PG_BIN / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]
        env = {**os.environ, **(user.env() if user else {})}
        with self.log_path.open("ab") as log:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                env=env,
                check=False,
                **(user.popen_kwargs() if user else PopenUser()),
            )
        if done.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise ServiceError(f"initdb failed; end of {self.log_path}:\n{tail(self.log_path)}")

    def _superuser_conn(self, dbname: str = "postgres") -> psycopg.Connection:
        return superuser_connect(str(self.socket_dir), self._port, dbname)

    def check_health(self) -> bool:
        with self._superuser_conn() as conn:
            row = conn.execute("select 1").fetchone()
            return row == (1,)

    def after_start(self) -> None:
        with self._superuser_conn() as conn:
            ensure_app_role(conn, self.app_user, self.app_password, self.app_db)
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            conn.execute("select 1")


def postgres_user() -> SystemUser | None:
    """The account PostgreSQL's programs run as: `postgres` when we are root, else ourselves."""
    return SystemUser.lookup(SUPERUSER) if os.geteuid() == 0 else None


def superuser_connect(
    host: str, port: int, dbname: str = "postgres", password: str | None = None
) -> psycopg.Connection:
    """The `postgres` superuser: trusted on the unix socket, with `password` on loopback
    (the HA nodes, memestream/stack/pg_auth.py)."""
    return psycopg.connect(
        host=host,
        port=port,
        user=SUPERUSER,
        password=password,
        dbname=dbname,
        connect_timeout=2,
        autocommit=True,
    )


def ensure_app_role(conn: psycopg.Connection, user: str, password: str, dbname: str) -> None:
    """Create (or re-password) the application role, and its database owned by it."""
    role = sql.Identifier(user)
    exists = conn.execute("select 1 from pg_roles where rolname = %s", (user,)).fetchone()
    verb = sql.SQL("alter role" if exists else "create role")
    conn.execute(sql.SQL("{} {} with login password {}").format(verb, role, sql.Literal(password)))
    has_db = conn.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone()
    verb = sql.SQL("alter database {} owner to {}" if has_db else "create database {} owner {}")
    conn.execute(verb.format(sql.Identifier(dbname), role))


def place_data_dir(data: Path, user: SystemUser | None) -> None:
    """Use `data`, or a /var/tmp folder (`data` then a symlink to it) when `user` can't reach it."""
    if data.is_symlink() or user is None or _reachable_by(user, data.parent):
        data.mkdir(parents=True, exist_ok=True)
        return
    _collect_orphans()
    digest = hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:12]
    real = FALLBACK_ROOT / f"memestream-{digest}" / "postgres"
    real.mkdir(parents=True, exist_ok=True)
    real.parent.chmod(0o755)
    (real.parent / "owner").write_text(str(data.absolute()))
    if data.exists():
        if any(data.iterdir()):
            raise ServiceError(f"{data} is not reachable by user {user.name}; move it away")
        data.rmdir()
    data.symlink_to(real, target_is_directory=True)


def _collect_orphans() -> None:
    """Delete fallback clusters whose stack folder is gone (tmp stacks of tests) and whose
    server is not running, so /var/tmp does not fill up with them."""
    for home in FALLBACK_ROOT.glob("memestream-*"):
        owner_file = home / "owner"
        try:
            if time.time() - owner_file.stat().st_mtime < 60:
                continue  # just being set up by another process
            owner = Path(owner_file.read_text().strip())
        except OSError:
            continue
        if owner.is_symlink() and owner.resolve() == (home / "postgres").resolve():
            continue
        postmaster = home / "postgres" / "pgdata" / "postmaster.pid"
        try:
            pid = int(postmaster.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = 0
        if pid and psutil.pid_exists(pid):
            continue
        shutil.rmtree(home, ignore_errors=True)


def _reachable_by(user: SystemUser, folder: Path) -> bool:
    """Can `user` traverse into `folder`? (Every ancestor needs the x bit for it.)"""
    runuser = shutil.which("runuser")
    if runuser is None:
        return True
    done = subprocess.run(
        [runuser, "-u", user.name, "--", "test", "-x", str(folder)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return done.returncode == 0
