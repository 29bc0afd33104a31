"""PostgreSQL with automatic failover: a pg_auto_failover monitor, a primary and a hot standby.

pg_auto_failover (Debian's `postgresql-15-auto-failover`) was chosen over Patroni + etcd: it
is one C binary beside PostgreSQL with the state machine kept in a small monitor database,
where Patroni needs a Python daemon per node plus a three-member etcd cluster to be
safe. Each node is one `pg_autoctl run` process that owns its `postgres` child; the first
start runs `pg_autoctl create ... --run` instead, which initialises the node (initdb for the
first data node, pg_basebackup from the primary for the second) and then keeps running. With
two data nodes pg_auto_failover replicates synchronously (`ANY 1` standby), so a commit the
client saw is on the standby before the primary dies.

Clients follow the primary with a libpq multi-host URL (`ha_database_url`) and
`target_session_attrs=read-write`. Like `postgres.py`, the nodes run as the `postgres`
user when we are root, with data under `<stack>/data/ha-pg-*` (or the /var/tmp fallback).
Every loopback login needs a password (`--auth scram-sha-256`, and `pg_auth.harden_hba` for
the `trust` rules initdb leaves): pg_auto_failover's roles and `postgres` read theirs from
the stack's password file, the application role logs in with DATABASE_URL's.
"""

from __future__ import annotations

import os
import signal
import subprocess
from functools import cached_property
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from domain.settings import Settings
from memestream.stack.layout import StackLayout
from memestream.stack.pg_auth import (
    MONITOR_USER,
    REPLICATION_USER,
    HaPgPasswords,
    harden_hba,
    passwords,
    write_pgpass,
)
from memestream.stack.postgres import (
    PG_BIN,
    SUPERUSER,
    ensure_app_role,
    place_data_dir,
    postgres_user,
    superuser_connect,
)
from memestream.stack.process import (
    ManagedProcess,
    PopenUser,
    ServiceError,
    SystemUser,
    wait_until,
)

PG_AUTOCTL = Path(os.environ.get("MEMESTREAM_PG_AUTOCTL", "/usr/bin/pg_autoctl"))
MONITOR_DB = "pg_auto_failover"
DATA_NODES = ("a", "b")
#: States in which a data node serves its role (`wait_primary`: a primary whose standby is gone).
SERVING_STATES = frozenset({"single", "primary", "wait_primary", "secondary"})
WRITABLE_STATES = frozenset({"single", "primary", "wait_primary"})
#: The monitor's failure detection, in ms. Its defaults (5 s checks, 2 retries 2 s apart, a
#: node unhealthy after 20 s, then 30 s for the old primary to demote itself) give failovers
#: of a minute; on one machine a refused connection is a certain sign of death, so we check
#: every second, call a node dead after 5 s and wait 5 s more for it to step down.
MONITOR_TIMING_MS: dict[str, int] = {
    "pgautofailover.primary_demote_timeout": 5000,
    "pgautofailover.health_check_period": 1000,
    "pgautofailover.health_check_timeout": 1000,
    "pgautofailover.health_check_max_retries": 1,
    "pgautofailover.health_check_retry_delay": 500,
    "pgautofailover.node_considered_unhealthy_timeout": 5000,
    "pgautofailover.startup_grace_period": 5000,
}
#: What pg_auto_failover's tuning (a quarter of the machine's memory each, 8 GB of WAL kept)
#: would make too big for several nodes on one machine, and WAL archiving for pgBackRest
#: (memestream/stack/backup.py sets the archive command; until then WAL is discarded).
NODE_SETTINGS: dict[str, str] = {
    "archive_mode": "on",
    "shared_buffers": "128MB",
    "effective_cache_size": "1GB",
    "maintenance_work_mem": "64MB",
    "work_mem": "8MB",
    "wal_keep_size": "1GB",
    "max_connections": "200",
}
#: A primary that loses the monitor and its standby demotes itself after this many seconds:
#: shorter than `primary_demote_timeout`, so the old primary has stopped taking writes
#: before the monitor promotes the standby (no split brain).
#: The NODE_SETTINGS PostgreSQL reads only at start (context `postmaster`).
RESTART_SETTINGS = ("archive_mode", "shared_buffers", "max_connections")
NETWORK_PARTITION_TIMEOUT_S = 3
PREPARE_WAIT_S = 300.0


def ha_ports(settings: Settings) -> tuple[int, list[int]]:
    """The monitor's port and the data nodes' ports (`POSTGRES_HA_PORT` and the next ones)."""
    base = settings.postgres_ha_port
    return base, [base + 1 + i for i in range(len(DATA_NODES))]


def ha_database_url(settings: Settings) -> str:
    """DATABASE_URL for the HA nodes: every node listed, libpq connects to the writable one."""
    params = conninfo_to_dict(settings.database_url)
    user = params.get("user") or "memestream"
    password = params.get("password") or ""
    dbname = params.get("dbname") or user
    hosts = ",".join(f"127.0.0.1:{port}" for port in ha_ports(settings)[1])
    auth = f"{user}:{password}" if password else str(user)
    return f"postgresql://{auth}@{hosts}/{dbname}?target_session_attrs=read-write"


class AutoctlNode(ManagedProcess):
    """One `pg_autoctl run`: the monitor or a data node, with its PostgreSQL as a child."""

    stop_signal = signal.SIGINT  # pg_autoctl's "fast" stop: Postgres stops in fast mode
    start_timeout = 180.0
    stop_timeout = 60.0

    def __init__(self, name: str, layout: StackLayout, port: int) -> None:
        super().__init__(name, layout)
        self._port = port
        self._layout = layout

    @cached_property
    def passwords(self) -> HaPgPasswords:
        return passwords(self._layout)

    @property
    def port(self) -> int:
        return self._port

    @property
    def home(self) -> Path:
        return self.data_dir.resolve()

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    def run_as(self) -> SystemUser | None:
        return postgres_user()

    def cwd(self) -> Path:
        return self.home

    def env(self) -> dict[str, str]:
        """pg_autoctl keeps its config and state under the XDG folders: ours, per node."""
        return {
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_DATA_HOME": str(self.home / "share"),
            "XDG_RUNTIME_DIR": str(self.home / "run"),
            "PG_CONFIG": str(PG_BIN / "pg_config"),
            "PGHOST": "127.0.0.1",
            "PGPASSFILE": str(self.home / "pgpass"),
        }

    @property
    def initialised(self) -> bool:
        return any((self.home / "config").rglob("pg_autoctl.cfg"))

    def prepare(self) -> None:
        if not PG_AUTOCTL.exists():
            raise ServiceError(
                f"{PG_AUTOCTL} not found: apt-get install postgresql-15-auto-failover"
            )
        user = self.run_as()
        place_data_dir(self.data_dir, user)
        for folder in (self.home, self.home / "config", self.home / "share", self.home / "run"):
            folder.mkdir(exist_ok=True)
            if user is not None:
                os.chown(folder, user.uid, user.gid)
            folder.chmod(0o700)
        write_pgpass(self.home / "pgpass", self.passwords, user)

    def create_args(self) -> list[str]:
        """`pg_autoctl create <what>` arguments for a node not yet initialised."""
        raise NotImplementedError

    def command(self) -> list[str]:
        if self.initialised:
            return [str(PG_AUTOCTL), "run", "--pgdata", str(self.pgdata)]
        return [
            str(PG_AUTOCTL),
            "create",
            *self.create_args(),
            "--pgdata",
            str(self.pgdata),
            "--pgport",
            str(self._port),
            "--pgctl",
            str(PG_BIN / "pg_ctl"),
            "--hostname",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
            "--auth",
            "scram-sha-256",
            "--no-ssl",
            "--run",
        ]

    def autoctl(self, *args: str) -> str:
        """Run a `pg_autoctl` subcommand on this node (as its user, with its XDG folders)."""
        user = self.run_as()
        done = subprocess.run(
            [str(PG_AUTOCTL), *args, "--pgdata", str(self.pgdata)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.home,
            env={**os.environ, **(user.env() if user else {}), **self.env()},
            check=False,
            **(user.popen_kwargs() if user else PopenUser()),
        )
        if done.returncode != 0:
            raise ServiceError(f"{self.name}: pg_autoctl {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return superuser_connect("127.0.0.1", self._port, dbname, self.passwords.superuser)

    def set_passwords(self, conn: psycopg.Connection, roles: dict[str, str]) -> None:
        """Give each role its password (before `harden_hba` makes them needed)."""
        for role, password in roles.items():
            conn.execute(
                sql.SQL("alter role {} with password {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )

    def harden_hba(self) -> None:
        """No `trust` rule left but the health check's (see pg_auth), then reload."""
        hba = self.pgdata / "pg_hba.conf"
        text = hba.read_text()
        hardened = harden_hba(text)
        if hardened != text:
            hba.write_text(hardened)
            with self.connect() as conn:
                conn.execute("select pg_reload_conf()")


class MonitorNode(AutoctlNode):
    """The pg_auto_failover monitor: health-checks the data nodes and drives failover."""

    def __init__(self, settings: Settings, layout: StackLayout) -> None:
        super().__init__("ha-pg-monitor", layout, ha_ports(settings)[0])

    @property
    def url(self) -> str:
        return f"postgresql://{MONITOR_USER}@127.0.0.1:{self._port}/{MONITOR_DB}"

    @property
    def monitor_uri(self) -> str:
        return f"{self.url}?sslmode=disable"

    def create_args(self) -> list[str]:
        return ["monitor"]

    def check_health(self) -> bool:
        with self.connect(MONITOR_DB) as conn:
            return conn.execute("select 1 from pgautofailover.formation limit 1").fetchone() == (1,)

    def after_start(self) -> None:
        """Passwords, then faster failure detection than the defaults (MONITOR_TIMING_MS)."""
        with self.connect(MONITOR_DB) as conn:
            self.set_passwords(
                conn, {SUPERUSER: self.passwords.superuser, MONITOR_USER: self.passwords.monitor}
            )
        self.harden_hba()
        with self.connect(MONITOR_DB) as conn:
            for name, value in MONITOR_TIMING_MS.items():
                conn.execute(
                    sql.SQL("alter system set {} = {}").format(
                        sql.Identifier(name), sql.Literal(str(value))
                    )
                )
            conn.execute("select pg_reload_conf()")

    def node_states(self) -> dict[int, tuple[str, str]]:
        """Each data node's port -> (reported state, goal state), as the monitor sees it."""
        with self.connect(MONITOR_DB) as conn:
            rows = conn.execute(
                "select nodeport, reportedstate::text, goalstate::text from pgautofailover.node"
            ).fetchall()
        return {int(port): (str(reported), str(goal)) for port, reported, goal in rows}


class DataNode(AutoctlNode):
    """A PostgreSQL data node (primary or hot standby: the monitor decides which)."""

    def __init__(
        self, settings: Settings, layout: StackLayout, monitor: MonitorNode, index: int
    ) -> None:
        super().__init__(f"ha-pg-{DATA_NODES[index]}", layout, ha_ports(settings)[1][index])
        self.monitor = monitor
        self.index = index
        params = conninfo_to_dict(settings.database_url)
        self.app_user = str(params.get("user") or "memestream")
        self.app_password = str(params.get("password") or "")
        self.app_db = str(params.get("dbname") or self.app_user)

    @property
    def url(self) -> str:
        return f"postgresql://127.0.0.1:{self._port}/{self.app_db}"

    def create_args(self) -> list[str]:
        return [
            "postgres",
            "--name",
            f"node_{DATA_NODES[self.index]}",
            "--dbname",
            self.app_db,
            "--monitor",
            self.monitor.monitor_uri,
        ]

    def prepare(self) -> None:
        """Wait for the monitor; a second node waits for a primary to copy from, so the
        nodes may be started in parallel and the first one still becomes the primary."""
        super().prepare()
        if self.initialised:
            return

        def ready() -> bool:
            try:
                states = self.monitor.node_states()
            except psycopg.Error:
                return False
            if self.index == 0:
                return True
            return any(
                reported in WRITABLE_STATES and self._settled(port)
                for port, (reported, _) in states.items()
            )

        wait_until(ready, PREPARE_WAIT_S, what=f"{self.name}: a settled primary to copy")

    def _settled(self, port: int) -> bool:
        """Whether the node on `port` runs with NODE_SETTINGS: the first node restarts once
        to apply them, and a standby that clones during that restart gives up (seen in CI:
        'Failed to initialize standby server', and the primary never came back)."""
        try:
            with superuser_connect("127.0.0.1", port, password=self.passwords.superuser) as conn:
                return runs_with_node_settings(conn)
        except psycopg.Error:
            return False

    def state(self) -> str | None:
        """This node's state as the monitor last heard it (None if it is not registered)."""
        reported = self.monitor.node_states().get(self._port)
        return reported[0] if reported else None

    def check_health(self) -> bool:
        try:
            with self.connect() as conn:
                conn.execute("select 1")
        except psycopg.OperationalError:
            if self.index > 0:
                self._hurry_base_backup()
            raise
        return self.state() in SERVING_STATES

    def _hurry_base_backup(self) -> None:
        """pg_autoctl's pg_basebackup asks for a spread checkpoint (a minute and more on an
        idle primary); a CHECKPOINT on the primary while it waits ends that wait at once."""
        for port, (reported, _) in self.monitor.node_states().items():
            if port != self._port and reported in WRITABLE_STATES:
                secret = self.passwords.superuser
                with superuser_connect("127.0.0.1", port, password=secret) as conn:
                    conn.execute("checkpoint")

    def after_start(self) -> None:
        self.autoctl(
            "config", "set", "timeout.network_partition_timeout", str(NETWORK_PARTITION_TIMEOUT_S)
        )
        self._secure()
        self._allow_app_password()
        self.apply_node_settings()
        with self.connect() as conn:
            in_recovery = conn.execute("select pg_is_in_recovery()").fetchone()
        if in_recovery == (False,):
            self._ensure_app_role()

    def _secure(self) -> None:
        """A primary sets the passwords; a standby waits until they have replicated to it
        (until then only `trust` lets us in); then either drops its `trust` rules."""
        roles = {SUPERUSER: self.passwords.superuser, REPLICATION_USER: self.passwords.replication}

        def replicated() -> bool:
            with self.connect() as conn:
                if conn.execute("select pg_is_in_recovery()").fetchone() == (False,):
                    self.set_passwords(conn, roles)
                    return True
                row = conn.execute(
                    "select count(*) from pg_authid where rolname = any(%s)"
                    " and rolpassword is not null",
                    (list(roles),),
                ).fetchone()
            return row == (len(roles),)

        wait_until(replicated, self.start_timeout, what=f"{self.name}: role passwords")
        self.harden_hba()

    def apply_node_settings(self) -> None:
        """NODE_SETTINGS through ALTER SYSTEM; when one needs a restart (the first start of the
        first node: a standby copies them from the primary), stop PostgreSQL in fast mode and
        let pg_autoctl start it again."""
        with self.connect() as conn:
            for name, value in NODE_SETTINGS.items():
                conn.execute(
                    sql.SQL("alter system set {} = {}").format(
                        sql.Identifier(name), sql.Literal(value)
                    )
                )
            command = conn.execute("select current_setting('archive_command')").fetchone()
            if command == ("",):  # archive_mode=on with no command would keep every WAL file
                conn.execute("alter system set archive_command = '/bin/true'")
            conn.execute("select pg_reload_conf()")
            # Not pg_settings.pending_restart: the reload is asynchronous, so right after it
            # that column may not yet know (seen: a node that never restarted).
            if runs_with_node_settings(conn):
                return
        postmaster = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGINT)

        def restarted() -> bool:
            try:
                with self.connect() as conn:
                    return runs_with_node_settings(conn)
            except psycopg.OperationalError:
                return False

        wait_until(restarted, self.start_timeout, what=f"{self.name}: restart for its settings")

    def _allow_app_password(self) -> None:
        """Put a scram rule for the application role ahead of pg_auto_failover's trust
        rules, so the app's password is checked (pg_autoctl only ever appends rules)."""
        hba = self.pgdata / "pg_hba.conf"
        rule = f"host all {self.app_user} 127.0.0.1/32 scram-sha-256  # memestream app\n"
        lines = hba.read_text().splitlines(keepends=True)
        if rule in lines:
            return
        first = next(i for i, line in enumerate(lines) if line.strip() and line[0] != "#")
        hba.write_text("".join([*lines[:first], rule, *lines[first:]]))
        with self.connect() as conn:
            conn.execute("select pg_reload_conf()")

    def _ensure_app_role(self) -> None:
        with self.connect() as conn:
            ensure_app_role(conn, self.app_user, self.app_password, self.app_db)


def runs_with_node_settings(conn: psycopg.Connection) -> bool:
    """Whether the server runs with the RESTART_SETTINGS of NODE_SETTINGS."""
    return all(
        conn.execute("select current_setting(%s)", (name,)).fetchone() == (NODE_SETTINGS[name],)
        for name in RESTART_SETTINGS
    )


def postgres_ha_nodes(
    settings: Settings, layout: StackLayout
) -> tuple[MonitorNode, list[DataNode]]:
    monitor = MonitorNode(settings, layout)
    return monitor, [DataNode(settings, layout, monitor, i) for i in range(len(DATA_NODES))]


def postgres_ha_services(settings: Settings, layout: StackLayout) -> list[ManagedProcess]:
    """The monitor then the data nodes, in start order (they also cope with a parallel start)."""
    monitor, nodes = postgres_ha_nodes(settings, layout)
    return [monitor, *nodes]
