"""Backups of the HA PostgreSQL with pgBackRest (Debian's `pgbackrest`) into the MinIO bucket.

The repository is an S3 one (path-style, `BACKUP_REPO_PATH` inside `S3_BUCKET`) and WAL is
archived continuously (`archive_command = pgbackrest archive-push`), so a full backup plus
the archive restores the cluster to any moment since that backup. pgBackRest lists both
data nodes and finds the primary itself, so backups and archiving follow a failover.

pgBackRest speaks S3 only over TLS: the MinIO it uses must serve HTTPS (MinIO does when
`<certs-dir>/public.crt` and `private.key` exist; `BACKUP_S3_CA_FILE` names the CA to trust,
e.g. that self-signed `public.crt`). pgBackRest runs as the `postgres` user (it reads the
data folders), so its config, logs and locks live in a folder that user can reach
(`<stack>/data/pgbackrest`, or its /var/tmp fallback); the config holds the S3 secret and
is readable by that user only. pgBackRest matches the certificate by DNS name only (not
by IP address), so a local MinIO is named `localhost` in the URL (its certificate says so)
and reached at 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from domain.settings import Settings
from memestream.stack.layout import StackLayout
from memestream.stack.pg_auth import passwords
from memestream.stack.postgres import (
    SUPERUSER,
    place_data_dir,
    postgres_command,
    postgres_user,
    superuser_connect,
)
from memestream.stack.postgres_ha import DataNode
from memestream.stack.process import ManagedProcess, PopenUser, ServiceError, SystemUser

PGBACKREST = Path(os.environ.get("MEMESTREAM_PGBACKREST", "/usr/bin/pgbackrest"))
COMMAND_TIMEOUT_S = 1800
#: How long `setup` retries `pgbackrest check` while a fresh cluster settles.
CHECK_WAIT_S = 90.0


def _own(path: Path, user: SystemUser | None, mode: int) -> None:
    if user is not None:
        os.chown(path, user.uid, user.gid)
    path.chmod(mode)


class PgBackRest:
    """pgBackRest's configuration and commands for one stanza (the HA data nodes)."""

    def __init__(self, settings: Settings, layout: StackLayout, nodes: Sequence[DataNode]) -> None:
        self.settings = settings
        self.layout = layout
        self.nodes = list(nodes)
        self.stanza = settings.backup_stanza
        self.user = postgres_user()

    @property
    def home(self) -> Path:
        return self.layout.data("pgbackrest").resolve()

    @property
    def config_path(self) -> Path:
        return self.home / "pgbackrest.conf"

    def archive_command(self) -> str:
        return f"{PGBACKREST} --config={self.config_path} --stanza={self.stanza} archive-push %p"

    def config_text(self) -> str:
        endpoint = urlsplit(self.settings.backup_s3_endpoint_url or self.settings.s3_endpoint_url)
        host = endpoint.hostname or "127.0.0.1"
        lines = [
            "[global]",
            "repo1-type=s3",
            f"repo1-s3-endpoint={host}",
            f"repo1-storage-port={endpoint.port or 443}",
            "repo1-s3-uri-style=path",
            f"repo1-s3-bucket={self.settings.s3_bucket}",
            f"repo1-s3-region={self.settings.s3_region}",
            f"repo1-s3-key={self.settings.s3_access_key}",
            f"repo1-s3-key-secret={self.settings.s3_secret_key}",
            f"repo1-path={self.settings.backup_repo_path}",
            f"repo1-retention-full={self.settings.backup_retention_full}",
            "start-fast=y",
            "compress-type=lz4",
            f"log-path={self.home / 'log'}",
            f"lock-path={self.home / 'lock'}",
            f"spool-path={self.home / 'spool'}",
            "log-level-console=warn",
            "log-level-file=info",
        ]
        if self.settings.backup_s3_ca_file is not None:
            lines.append(f"repo1-storage-ca-file={self.home / 'ca.crt'}")
        lines += ["", f"[{self.stanza}]"]
        for i, node in enumerate(self.nodes, start=1):
            lines += [
                f"pg{i}-path={node.pgdata}",
                f"pg{i}-port={node.port}",
                f"pg{i}-user={SUPERUSER}",
            ]
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        self.layout.data("pgbackrest").parent.mkdir(parents=True, exist_ok=True)
        place_data_dir(self.layout.data("pgbackrest"), self.user)
        _own(self.home, self.user, 0o700)
        for sub in ("log", "lock", "spool"):
            (self.home / sub).mkdir(exist_ok=True)
            _own(self.home / sub, self.user, 0o700)
        ca = self.settings.backup_s3_ca_file
        if ca is not None:
            shutil.copyfile(ca, self.home / "ca.crt")
            _own(self.home / "ca.crt", self.user, 0o600)
        self.config_path.write_text(self.config_text())
        _own(self.config_path, self.user, 0o600)

    def run(self, *args: str) -> str:
        """One pgBackRest command as the `postgres` user; its output, or ServiceError."""
        argv = [str(PGBACKREST), f"--config={self.config_path}", f"--stanza={self.stanza}", *args]
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.home,
            env={**os.environ, **(self.user.env() if self.user else {})},
            timeout=COMMAND_TIMEOUT_S,
            check=False,
            **(self.user.popen_kwargs() if self.user else PopenUser()),
        )
        if done.returncode != 0:
            raise ServiceError(f"pgbackrest {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def setup(self) -> None:
        """Config, WAL archiving on every data node, the stanza; idempotent."""
        self.write_config()
        self._archive_everywhere()
        self.run("stanza-create")
        self._check()

    def _archive_everywhere(self) -> None:
        """archive_mode on (restarting a node that still lacks it: a standby cloned while its
        primary had not yet applied the node settings starts without it) and our
        archive_command, on every data node."""
        for node in self.nodes:
            node.apply_node_settings()
            with node.connect() as conn:
                conn.execute(
                    sql.SQL("alter system set archive_command = {}").format(
                        sql.Literal(self.archive_command())
                    )
                )
                conn.execute("select pg_reload_conf()")

    def _check(self) -> None:
        """`pgbackrest check`, retried for a bounded time: right after a cluster's first start
        pg_autoctl may still restart a node with its own settings (seen: "archive_mode must be
        enabled" once in three fresh starts), and the settings are applied again."""
        deadline = time.monotonic() + CHECK_WAIT_S
        while True:
            try:
                self.run("check")
                return
            except ServiceError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(2.0)
            self._archive_everywhere()

    def backup(self, kind: str = "full") -> float:
        """A backup of the primary; returns its duration in seconds."""
        start = time.monotonic()
        self.run(f"--type={kind}", "backup")
        return time.monotonic() - start

    def info(self) -> dict[str, Any]:
        stanzas = json.loads(self.run("--output=json", "info"))
        return stanzas[0] if stanzas else {}

    def restore_dir(self, name: str = "pg-restored") -> Path:
        """`<stack>/data/<name>/pgdata`, emptied, in a folder the `postgres` user can reach."""
        place_data_dir(self.layout.data(name), self.user)
        home = self.layout.data(name).resolve()
        _own(home, self.user, 0o700)
        shutil.rmtree(home / "pgdata", ignore_errors=True)
        return home / "pgdata"

    def restore(self, target: datetime, pgdata: Path) -> float:
        """Restore the backup and WAL up to `target` into `pgdata` (which must not exist or
        be empty), ready to start as a promoted, non-archiving server; returns seconds."""
        pgdata.mkdir(parents=True, exist_ok=True)
        if any(pgdata.iterdir()):
            raise ServiceError(f"{pgdata} is not empty: restore into a fresh folder")
        _own(pgdata, self.user, 0o700)
        start = time.monotonic()
        self.run(
            f"--pg1-path={pgdata}",
            "--type=time",
            f"--target={target.isoformat(sep=' ')}",
            "--target-action=promote",
            "--archive-mode=off",
            "restore",
        )
        return time.monotonic() - start


class RestoredPostgres(ManagedProcess):
    """A restored data folder run as a plain, stand-alone PostgreSQL (no pg_autoctl, no
    synchronous standby to wait for, no archiving) to check or copy what it holds."""

    start_timeout = 300.0  # replays the WAL up to the target first

    def __init__(self, layout: StackLayout, pgdata: Path, port: int) -> None:
        super().__init__("pg-restored", layout)
        self.pgdata = pgdata
        self._port = port

    @property
    def url(self) -> str:
        return f"postgresql://127.0.0.1:{self._port}/postgres"

    @property
    def port(self) -> int:
        return self._port

    def run_as(self) -> SystemUser | None:
        return postgres_user()

    def cwd(self) -> Path:
        return self.pgdata

    def command(self) -> list[str]:
        # Stand-alone: no synchronous standby to wait for, no archiving into the live repo.
        return postgres_command(
            self.pgdata,
            self._port,
            self.pgdata,
            {"synchronous_standby_names": "", "archive_mode": "off"},
        )

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        """As `postgres` with the HA stack's password (restored with the roles)."""
        return superuser_connect("127.0.0.1", self._port, dbname, passwords(self.layout).superuser)

    def check_health(self) -> bool:
        """Up and done recovering (promoted at the target)."""
        with self.connect() as conn:
            return conn.execute("select pg_is_in_recovery()").fetchone() == (False,)
