"""`memestream schemas ...`: compare `schemas/` with the schema registry, and register it.

`check` fails (exit 1) when the registry would refuse a version in `schemas/` as
incompatible with its subject's history, before any producer tries: CI runs it. `register`
sets each `<topic>-value` subject's compatibility and registers every version not there
yet, oldest first; running it again changes nothing (`up` runs it).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from domain.settings import get_settings

app = typer.Typer(help="Schemas in the schema registry: check and register.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

FolderOption = Annotated[
    str | None, typer.Option("--folder", help="Schema folder (default: the project's schemas/).")
]


def run(register: bool, folder: str | None = None) -> bool:
    """Prints one row per subject; True when every version is (or can be) registered."""
    from pathlib import Path

    from confluent_kafka.schema_registry.error import SchemaRegistryError

    from producers.schema_registry import check_subjects, registry_client
    from producers.serialization import SchemaRegistry, default_registry

    settings = get_settings()
    if not settings.schema_registry_url:
        err_console.print("[yellow]SCHEMA_REGISTRY_URL is empty: no registry to compare with")
        return True
    local = SchemaRegistry.from_folder(Path(folder)) if folder else default_registry()
    client = registry_client(settings.schema_registry_url, settings.schema_registry_timeout_s)
    try:
        reports = check_subjects(
            client, local, register=register, compatibility=settings.schema_compatibility
        )
    except (SchemaRegistryError, OSError, Exception) as exc:
        err_console.print(f"[red]error:[/red] {settings.schema_registry_url}: {exc}")
        raise typer.Exit(2) from exc
    table = Table(title=f"schemas at {settings.schema_registry_url}", title_justify="left")
    for column in ("subject", "registered", "registered now" if register else "new", "refused"):
        table.add_column(column)
    for report in reports:
        style = "green" if report.compatible else "red"
        table.add_row(
            f"[{style}]{report.subject}[/{style}]",
            ", ".join(report.registered) or "-",
            ", ".join(report.new) or "-",
            "\n".join(report.refused) or "-",
        )
    console.print(table)
    return all(report.compatible for report in reports)


@app.command()
def check(folder: FolderOption = None) -> None:
    """Fail when a schema version would be refused as incompatible by the registry."""
    if not run(register=False, folder=folder):
        raise typer.Exit(1)


@app.command()
def register(folder: FolderOption = None) -> None:
    """Register every version not in the registry yet (idempotent) and set compatibility."""
    if not run(register=True, folder=folder):
        raise typer.Exit(1)
