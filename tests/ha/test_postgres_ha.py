"""Failover of the PostgreSQL HA cluster under writes through the project's own pool:
SIGKILL the primary (pg_autoctl and postgres), the standby is promoted, no committed row is
lost, and the pool serves every request again without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import psutil
import psycopg
import pytest

from benchmarks.ha_restore import HaBackupRig
from memestream.stack.pg_auth import MONITOR_USER, REPLICATION_USER, passwords
from memestream.stack.postgres import SUPERUSER
from memestream.stack.postgres_ha import DataNode
from sinks.postgres.errors import POSTGRES_ERRORS
from sinks.postgres.pool import create_pool
from tests.ha.conftest import primary

pytestmark = pytest.mark.ha

WRITE_BUDGET_S = 90.0  # the whole write loop's bound
FAILOVER_LIMIT_S = 30.0  # the goal for every failover


def test_every_node_listens_on_loopback_only(pg_ha: HaBackupRig) -> None:
    for node in (pg_ha.monitor, *pg_ha.nodes):
        proc = node.process()
        assert proc is not None, node.name
        listening: set[tuple[str, int]] = set()
        for p in (proc, *proc.children(recursive=True)):
            with contextlib.suppress(psutil.NoSuchProcess):  # pg_autoctl's short-lived helpers
                listening |= {
                    (c.laddr.ip, c.laddr.port)
                    for c in p.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN
                }
        assert listening == {("127.0.0.1", node.port)}, node.name


@pytest.mark.parametrize("user", [SUPERUSER, MONITOR_USER, REPLICATION_USER])
def test_loopback_login_without_password_is_refused(pg_ha: HaBackupRig, user: str) -> None:
    for node in (pg_ha.monitor, *pg_ha.nodes):
        for dbname in ("postgres", "pg_auto_failover", "replication"):
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(
                    host="127.0.0.1",
                    port=node.port,
                    user=user,
                    dbname=dbname,
                    passfile="/dev/null",  # not even a ~/.pgpass of ours
                    connect_timeout=5,
                ).close()
    # ... while the same login with the stack's password is let in (the node is up).
    secret = passwords(pg_ha.layout).superuser
    for node in (pg_ha.monitor, *pg_ha.nodes):
        with psycopg.connect(
            host="127.0.0.1", port=node.port, user=SUPERUSER, password=secret, dbname="postgres"
        ) as conn:
            assert conn.execute("select current_user").fetchone() == (SUPERUSER,)


def sigkill_node(node: DataNode) -> None:
    """kill -9 the node's pg_autoctl (its whole process group) and its postmaster."""
    proc = node.process()
    assert proc is not None
    postmaster = int((node.pgdata / "postmaster.pid").read_text().split()[0])
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(postmaster, signal.SIGKILL)
    psutil.wait_procs([proc], timeout=10)


async def test_primary_sigkill_under_writes_loses_no_committed_row(pg_ha: HaBackupRig) -> None:
    old = primary(pg_ha)
    settings = pg_ha.settings.model_copy(update={"database_pool_size": 4})
    pool = create_pool(settings, min_size=4)  # 4 idle connections to the old primary
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:
            await conn.execute("create table if not exists ha_probe (n integer primary key)")
            await conn.execute("truncate ha_probe")
        committed: list[int] = []
        ok_at: list[float] = []
        errors = 0
        killed_at = 0.0
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < WRITE_BUDGET_S:
            n += 1
            try:
                async with pool.connection() as conn:
                    await conn.execute("insert into ha_probe (n) values (%s)", (n,))
                committed.append(n)
                ok_at.append(time.monotonic())
            except POSTGRES_ERRORS:
                errors += 1
                await asyncio.sleep(0.05)
            if not killed_at and len(committed) >= 200:
                await asyncio.to_thread(sigkill_node, old)
                killed_at = time.monotonic()
            if killed_at and len([t for t in ok_at if t > killed_at]) >= 100:
                break
        assert killed_at, "never got to the kill"
        after = [t for t in ok_at if t > killed_at]
        assert len(after) >= 100, f"writes did not come back within {WRITE_BUDGET_S}s"
        before = max(t for t in ok_at if t <= killed_at)
        unavailable_s = after[0] - before
        new = primary(pg_ha)
        assert new is not old

        # Every idle connection pointed at the dead primary: all of them at once must work.
        async def one() -> int:
            async with pool.connection() as conn:
                cur = await conn.execute("select count(*) as c from ha_probe")
                row = await cur.fetchone()
                assert row is not None
                return int(row["c"])

        counts = await asyncio.gather(*(one() for _ in range(4)))
        async with pool.connection() as conn:
            cur = await conn.execute("select n from ha_probe")
            stored = {row["n"] for row in await cur.fetchall()}
            cur = await conn.execute("select inet_server_port() as port")
            row = await cur.fetchone()
        lost = set(committed) - stored
        print(
            f"\npostgres_primary_sigkill: unavailable_s={unavailable_s:.2f}"
            f" committed={len(committed)} lost={len(lost)} failed_writes={errors}"
            f" new_primary={new.name}"
        )
        assert lost == set()
        assert row is not None and row["port"] == new.port
        assert set(counts) == {len(stored)}
        assert unavailable_s < FAILOVER_LIMIT_S
    finally:
        await pool.close()
    # The killed node comes back as the new primary's standby (pg_rewind by pg_autoctl).
    old.start()
    assert old.state() == "secondary"
