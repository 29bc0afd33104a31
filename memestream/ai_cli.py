"""`memestream ai ...`: prepare the packaged models once, and see what the manager would load.

`prepare` converts SmolLM2's GGUF into a transformers folder under CACHE_DIR/ai (once per
machine; the bootstrap runs it), so no worker ever pays the ~13-45 s conversion at start.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from domain.settings import get_settings

app = typer.Typer(help="Prepare and inspect the local AI models.", no_args_is_help=True)
console = Console()


@app.command()
def prepare(
    force: Annotated[bool, typer.Option(help="Convert again even if already cached.")] = False,
) -> None:
    """Convert the caption model into the cache and report every packaged model."""
    from domain.ai.backends import ModelUnavailable
    from domain.ai.prepare import prepare as run

    try:
        models = run(get_settings(), force=force)
    except ModelUnavailable as exc:
        console.print(f"[yellow]skipped:[/yellow] {exc}")
        raise typer.Exit(0) from None
    table = Table(title="AI models", title_justify="left")
    for column in ("model", "status", "path", "seconds"):
        table.add_column(column)
    for m in models:
        table.add_row(m.name, m.status, str(m.path or "-"), f"{m.seconds:.1f}")
    console.print(table)


@app.command()
def status() -> None:
    """The model chain of every task at the configured AI_MODEL_SIZE."""
    from domain.ai.backends import ai_available
    from domain.ai.registry import Task, packaged_registry

    settings = get_settings()
    registry = packaged_registry(settings)
    console.print(f"ai extra installed: {ai_available()}; AI_MODEL_SIZE={settings.ai_model_size}")
    table = Table(title="Fallback chains", title_justify="left")
    table.add_column("task")
    table.add_column("chain")
    for task in Task:
        chain = [f"{s.name} ({s.size})" for s in registry.chain(task, settings.ai_model_size)]
        table.add_row(task.value, " -> ".join([*chain, "heuristic"]))
    console.print(table)
