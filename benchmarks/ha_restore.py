"""Point-in-time restore of the HA PostgreSQL from its pgBackRest backup in MinIO:
`python -m benchmarks.ha_restore`.

Starts its own MinIO (HTTPS, self-signed) and pg_auto_failover cluster in a /tmp stack
folder on free ports (never the shared stack), archives WAL and takes a full backup, commits
rows, notes the server time T, commits more rows, restores to T into a fresh data folder,
starts it and compares: the restored table must hold exactly the rows committed before T.
Writes reports/ha/restore.json and .html (`--report` to change). `--rows N` sets each batch's size.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from benchmarks._result import emit
from domain.settings import PROJECT_ROOT, Settings
from loadgen.private_platform import bindable
from memestream.stack.backup import PgBackRest, RestoredPostgres
from memestream.stack.layout import StackLayout
from memestream.stack.minio_tls import TlsMinioServer
from memestream.stack.postgres_ha import (
    DataNode,
    MonitorNode,
    ha_database_url,
    postgres_ha_nodes,
)
from memestream.testing.private_stack import free_port

TRANSACTIONS = 10  # each batch is committed in this many transactions
SETTLE_S = 1.1  # T is this far from the last commit before it and the first after it


@dataclass
class HaBackupRig:
    """A private MinIO (HTTPS) and PostgreSQL HA cluster with pgBackRest set up."""

    settings: Settings  # DATABASE_URL is the cluster's multi-host URL
    layout: StackLayout
    monitor: MonitorNode
    nodes: list[DataNode]
    backrest: PgBackRest


def free_run(length: int) -> int:
    """A free port whose `length - 1` successors are free too."""
    for _ in range(200):
        base = free_port()
        if all(bindable(base + i) for i in range(length)):
            return base
    raise RuntimeError("no free run of ports")


@contextmanager
def ha_backup_rig() -> Iterator[HaBackupRig]:
    root = Path(tempfile.mkdtemp(prefix="memestream-ha-backup-"))
    s3_port = free_run(2)
    base = Settings(
        stack_dir=root,
        postgres_ha_port=free_run(3),
        s3_endpoint_url=f"http://127.0.0.1:{s3_port}",
        s3_bucket="pgbackrest-test",
    )
    layout = StackLayout(root, base.cache_dir)
    minio = TlsMinioServer(base, layout)
    monitor, nodes = postgres_ha_nodes(base, layout)
    services = [minio, monitor, *nodes]
    try:
        for service in services:
            service.start()
        settings = base.model_copy(
            update={
                "database_url": ha_database_url(base),
                "backup_s3_endpoint_url": f"https://localhost:{s3_port}",
                "backup_s3_ca_file": minio.ca_file,
            }
        )
        backrest = PgBackRest(settings, layout, nodes)
        backrest.setup()
        yield HaBackupRig(settings, layout, monitor, nodes, backrest)
    finally:
        for service in reversed(services):
            service.stop()
        for data in (root / "data").glob("*"):
            if data.is_symlink():  # a /var/tmp fallback (postgres.place_data_dir): ours to delete
                shutil.rmtree(data.resolve().parent, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def _insert(conn: psycopg.Connection, first: int, count: int) -> None:
    step = max(1, count // TRANSACTIONS)
    for start in range(first, first + count, step):
        stop = min(first + count, start + step)
        with conn.transaction():
            conn.execute(
                "insert into pitr_probe (n) select generate_series(%s::integer, %s::integer)",
                (start, stop - 1),
            )


def pitr_check(rig: HaBackupRig, rows: int) -> dict[str, Any]:
    """Backup, rows, T, more rows, restore to T: what the restored server holds."""
    with psycopg.connect(rig.settings.database_url, autocommit=True) as conn:
        conn.execute("drop table if exists pitr_probe")
        conn.execute("create table pitr_probe (n integer primary key)")
        backup_s = rig.backrest.backup("full")
        _insert(conn, 1, rows)
        time.sleep(SETTLE_S)
        row = conn.execute("select now()").fetchone()
        assert row is not None
        target: datetime = row[0]
        time.sleep(SETTLE_S)
        _insert(conn, rows + 1, rows)
        total = conn.execute("select count(*) from pitr_probe").fetchone()
    rig.backrest.run("check")  # switches WAL and waits until the segment is archived
    pgdata = rig.backrest.restore_dir()
    restore_s = rig.backrest.restore(target, pgdata)
    server = RestoredPostgres(rig.layout, pgdata, free_port())
    start = time.monotonic()
    server.start()
    try:
        recovery_s = time.monotonic() - start
        dbname = str(conninfo_to_dict(rig.settings.database_url)["dbname"])
        with server.connect(dbname) as conn:
            restored = [r[0] for r in conn.execute("select n from pitr_probe order by n")]
    finally:
        server.stop()
    return {
        "target": target.astimezone(UTC).isoformat(),
        "rows_before_target": rows,
        "rows_after_target": rows,
        "rows_in_source": total[0] if total else None,
        "rows_restored": len(restored),
        "restored_match": restored == list(range(1, rows + 1)),
        "backup_s": round(backup_s, 2),
        "restore_s": round(restore_s, 2),
        "recovery_s": round(recovery_s, 2),
    }


FIGURES = (
    ("target", "T (restore target)"),
    ("rows_before_target", "rows committed before T"),
    ("rows_after_target", "rows committed after T"),
    ("rows_restored", "rows in the restored copy"),
    ("restored_match", "restored rows are exactly those before T"),
    ("backup_s", "full backup (s)"),
    ("restore_s", "pgBackRest restore (s)"),
    ("recovery_s", "WAL replay to T and promotion (s)"),
)


def write_html(result: dict[str, Any], path: Path) -> None:
    """The figures as one small table beside the JSON."""
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(result.get(key)))}</td></tr>"
        for key, label in FIGURES
    )
    path.write_text(
        "<!doctype html><meta charset=utf-8><title>PostgreSQL point-in-time restore</title>"
        "<style>body{font:14px sans-serif;margin:2em}th{text-align:left;padding-right:2em}"
        "</style><h1>PostgreSQL point-in-time restore</h1>"
        f"<p>pgBackRest from MinIO, measured {html.escape(str(result.get('measured_at')))}"
        f" on {os.cpu_count()} cores (benchmarks/ha_restore.py)</p><table>{rows}</table>\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--report", type=Path, default=PROJECT_ROOT / "reports/ha/restore.json")
    args = parser.parse_args(argv)
    with ha_backup_rig() as rig:
        result = pitr_check(rig, args.rows)
        result["backup_info"] = rig.backrest.info().get("backup", [])[-1:]
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(result, indent=2) + "\n")
    write_html(result, args.report.with_suffix(".html"))
    print(json.dumps(result, indent=2))
    emit(
        "ha_restore",
        [
            {
                "target": "PITR restore (pgBackRest from MinIO)",
                "value": result["restore_s"],
                "unit": "s",
            },
            {"target": "full backup", "value": result["backup_s"], "unit": "s"},
        ],
    )
    return 0 if result["restored_match"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
