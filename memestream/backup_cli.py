"""`memestream backup ...`: pgBackRest backups of the HA PostgreSQL into the MinIO bucket.

`setup` writes pgBackRest's config, points every data node's `archive_command` at it and
creates the stanza (idempotent; `run` does it first). `run` takes a backup (full by
default), `restore --to T` restores the backup and archived WAL up to T into a fresh data
folder (`<stack>/data/pg-restored/pgdata`) that `start --port` runs as a stand-alone
server to check or copy from; the HA cluster itself is left alone. `info` prints the
repository's backups. See memestream/stack/backup.py.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console

from domain.settings import get_settings
from memestream.stack.backup import PgBackRest, RestoredPostgres
from memestream.stack.postgres_ha import postgres_ha_nodes
from memestream.stack.process import ServiceError
from memestream.stack.stack import layout_for

app = typer.Typer(help="PostgreSQL HA backups (pgBackRest into MinIO).", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _backrest() -> PgBackRest:
    settings = get_settings()
    layout = layout_for(settings)
    _, nodes = postgres_ha_nodes(settings, layout)
    return PgBackRest(settings, layout, nodes)


def _restored(port: int) -> RestoredPostgres:
    layout = layout_for(get_settings())
    return RestoredPostgres(layout, layout.data("pg-restored").resolve() / "pgdata", port)


@app.command()
def setup() -> None:
    """Config, WAL archiving on every data node, the stanza."""
    try:
        _backrest().setup()
    except ServiceError as exc:
        err_console.print(f"[red]backup setup: {exc}")
        raise typer.Exit(1) from None
    console.print("pgBackRest ready: WAL archived from the primary")


@app.command("run")
def run_backup(
    kind: Annotated[
        str, typer.Option("--type", help="full, diff or incr.", case_sensitive=False)
    ] = "full",
) -> None:
    """Take a backup of the primary (after `setup`, which it runs first)."""
    if kind not in ("full", "diff", "incr"):
        raise typer.BadParameter("--type is full, diff or incr")
    backrest = _backrest()
    try:
        backrest.setup()
        seconds = backrest.backup(kind)
    except ServiceError as exc:
        err_console.print(f"[red]backup: {exc}")
        raise typer.Exit(1) from None
    console.print(f"{kind} backup done in {seconds:.1f}s")


def parse_target(text: str) -> datetime:
    """An ISO 8601 time with its UTC offset ('2026-12-07 22:00:00+00'): a time without one
    would be read in whatever zone the server runs in."""
    try:
        target = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time") from exc
    if target.tzinfo is None:
        raise typer.BadParameter("give the UTC offset too, e.g. '2026-12-07 22:00:00+00'")
    return target


@app.command()
def restore(
    to: Annotated[
        datetime,
        typer.Option(
            "--to", parser=parse_target, help="Target time, e.g. '2026-12-07 22:00:00+00'."
        ),
    ],
) -> None:
    """Restore to a point in time into <stack>/data/pg-restored/pgdata (emptied first)."""
    backrest = _backrest()
    backrest.write_config()
    pgdata = backrest.restore_dir()
    try:
        seconds = backrest.restore(to, pgdata)
    except ServiceError as exc:
        err_console.print(f"[red]restore: {exc}")
        raise typer.Exit(1) from None
    console.print(f"restored to {to.isoformat()} into {pgdata} in {seconds:.1f}s")
    console.print("run it with: memestream backup start --port PORT")


@app.command()
def start(port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")]) -> None:
    """Run the restored data folder as a stand-alone PostgreSQL (until `stop`)."""
    server = _restored(port)
    try:
        status = server.start()
    except ServiceError as exc:
        err_console.print(f"[red]restored server: {exc}")
        raise typer.Exit(1) from None
    console.print(f"restored server {status.state} at {status.url}")


@app.command()
def stop() -> None:
    """Stop the restored server that `start` left running."""
    server = _restored(0)
    console.print(f"restored server {server.stop().state}")


@app.command()
def info() -> None:
    """The repository's backups (pgBackRest's JSON)."""
    backrest = _backrest()
    backrest.write_config()
    try:
        console.print_json(json.dumps(backrest.info()))
    except ServiceError as exc:
        err_console.print(f"[red]info: {exc}")
        raise typer.Exit(1) from None
