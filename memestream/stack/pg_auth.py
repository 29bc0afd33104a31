"""Passwords for the HA PostgreSQL roles, and pg_hba.conf with no `trust` left on loopback.

`pg_autoctl create` runs `initdb --auth=trust`, whose default rules trust every local and
loopback connection, ahead of the scram rules `--auth scram-sha-256` adds for its own roles:
anyone on the machine could log in as the `postgres` superuser. So each HA stack gets
random passwords for `postgres`, `autoctl_node` (the nodes' connection to the monitor) and
`pgautofailover_replicator` (streaming replication), kept in `<stack>/conf/ha-pg/` readable
by its owner only; the nodes read them from a libpq password file (`PGPASSFILE`), never a
command line. Once a node has set them, `harden_hba` turns every `trust` rule into
`scram-sha-256` (`peer` on the unix socket, where pgBackRest logs in as the `postgres`
system user). The one rule left as `trust` is upstream's for `pgautofailover_monitor`: the
monitor's health check only waits for the server's answer and sends a fixed, public password.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from memestream.stack.layout import StackLayout
from memestream.stack.postgres import SUPERUSER
from memestream.stack.process import SystemUser

MONITOR_USER = "autoctl_node"
REPLICATION_USER = "pgautofailover_replicator"
#: pg_auto_failover's health-check role: trusted by upstream design (see module doc).
HEALTH_CHECK_USER = "pgautofailover_monitor"
HBA_METHODS = frozenset({"trust", "peer", "ident", "md5", "scram-sha-256", "password", "reject"})


@dataclass(frozen=True, slots=True)
class HaPgPasswords:
    """One password per role pg_auto_failover's nodes log in as."""

    superuser: str
    monitor: str
    replication: str

    @classmethod
    def generate(cls) -> HaPgPasswords:
        return cls(*(secrets.token_urlsafe(24) for _ in range(3)))

    def pgpass(self) -> str:
        """A libpq password file for every host and port of the stack (all on loopback)."""
        return "".join(
            f"*:*:*:{user}:{password}\n"
            for user, password in (
                (SUPERUSER, self.superuser),
                (MONITOR_USER, self.monitor),
                (REPLICATION_USER, self.replication),
            )
        )


def passwords(layout: StackLayout) -> HaPgPasswords:
    """The stack's passwords: made on first use, the same on every later start."""
    path = layout.conf("ha-pg") / "passwords.json"
    if path.exists():
        return HaPgPasswords(**json.loads(path.read_text()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    made = HaPgPasswords.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(made), out)
    return made


def write_pgpass(path: Path, made: HaPgPasswords, user: SystemUser | None) -> None:
    """The password file a node's pg_autoctl (and its postgres) read through PGPASSFILE."""
    path.write_text(made.pgpass())
    if user is not None:
        os.chown(path, user.uid, user.gid)
    path.chmod(0o600)  # libpq ignores a password file others can read


def harden_hba(text: str) -> str:
    """`text` with each `trust` rule made `peer` (unix socket) or `scram-sha-256`, except
    the health-check role's."""
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        fields = line.split("#", 1)[0].split()
        if len(fields) < 4 or fields[0] not in ("local", "host", "hostssl", "hostnossl"):
            out.append(line)
            continue
        # local DATABASE USER METHOD / host DATABASE USER ADDRESS [MASK] METHOD
        method_at = (
            3
            if fields[0] == "local"
            else next((i for i in range(4, len(fields)) if fields[i] in HBA_METHODS), -1)
        )
        if method_at < 0 or fields[method_at] != "trust":
            out.append(line)
            continue
        if fields[2].strip('"') == HEALTH_CHECK_USER:
            out.append(line)
            continue
        fields[method_at] = "peer" if fields[0] == "local" else "scram-sha-256"
        out.append(" ".join(fields) + "\n")
    return "".join(out)
