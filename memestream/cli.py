"""The `memestream` command: run the local stack, the API and the workers.

`memestream up` is the one command a developer needs: it starts every store, migrates
Postgres, creates the Kafka topics, registers the schemas, then runs the API and a worker of
every role (render, trending, analytics, inference) until Ctrl-C, which stops what `up`
started (stores that were already running are left running).
`up --detach` leaves everything in the background; `down` stops it all. With `--ha`, each
of these acts on the replicated stack (memestream/stack/ha.py) instead, which runs beside the
single-node one in its own folder and ports.

Migrations and topic creation are imported inside their commands, so the stack
commands start fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from domain.settings import PROJECT_ROOT, Settings, get_settings
from loadgen.cli import app as loadgen_app
from memestream.ai_cli import app as ai_app
from memestream.backup_cli import app as backup_app
from memestream.schemas_cli import app as schemas_app
from memestream.stack import SERVICE_NAMES, Stack, StackError, State, Status
from memestream.stack.apps import ApiProcess, WorkerProcess, api_command, worker_command
from memestream.stack.ha import HaStack, ha_env
from memestream.stack.ha_apps import ha_apps
from memestream.stack.process import ManagedProcess, ServiceError
from producers.roles import WORKER_ROLES

app = typer.Typer(
    help="Memestream: a meme platform built as a streaming data platform.",
    no_args_is_help=True,
    add_completion=False,
)
stack_app = typer.Typer(help="Start, stop and inspect the local stores only.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(loadgen_app, name="loadgen")
app.add_typer(ai_app, name="ai")
app.add_typer(schemas_app, name="schemas")
app.add_typer(backup_app, name="backup")

console = Console()
err_console = Console(stderr=True)

STATE_STYLE: dict[State, str] = {
    State.RUNNING: "green",
    State.READY: "green",
    State.EXTERNAL: "cyan",
    State.STARTING: "yellow",
    State.STALE: "red",
    State.STOPPED: "dim",
}

ServiceArgs = Annotated[
    list[str] | None,
    typer.Argument(
        help=f"Services to act on (default: all of {', '.join(SERVICE_NAMES)}).",
        show_default=False,
    ),
]

HaOption = Annotated[
    bool,
    typer.Option(
        "--ha", help="The replicated stack (3 Kafka nodes, Redis Sentinel, erasure-coded MinIO)."
    ),
]


def _stack(ha: bool) -> Stack:
    """The single-node stack, or the replicated one (its own folder, ports and settings)."""
    return HaStack(get_settings()) if ha else Stack(get_settings())


def _export_ha_settings(stack: HaStack) -> None:
    """`up --ha`: the API and workers it starts (and the schema registration, which reads
    `get_settings()`) must use the replicated stack, so its settings go in the environment."""
    os.environ.update(ha_env(get_settings(), stack.ports))
    get_settings.cache_clear()


def _status_table(statuses: Sequence[Status], title: str = "Memestream") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("service", style="bold")
    table.add_column("url")
    table.add_column("state")
    table.add_column("pid", justify="right")
    for st in statuses:
        style = STATE_STYLE.get(st.state, "")
        table.add_row(
            st.name, st.url, f"[{style}]{st.state}[/{style}]", str(st.pid) if st.pid else "-"
        )
    return table


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _stack_call(action: Callable[[], list[Status]], title: str) -> list[Status]:
    """Run a stack action, always print the table, exit non-zero if any service failed."""
    try:
        statuses = action()
    except ValueError as exc:
        raise _fail(str(exc), 2) from exc
    except StackError as exc:
        console.print(_status_table(exc.statuses, title))
        raise _fail(str(exc)) from exc
    console.print(_status_table(statuses, title))
    return statuses


def _run_migrations(settings: Settings) -> None:
    from sinks.postgres import migrate
    from sinks.postgres.templates import seed_templates

    migrate(settings)
    console.print("migrations: [green]up to date[/green]")
    console.print(f"templates: [green]{seed_templates(settings)} seeded[/green]")
    _apply_clickhouse_schema(settings)


def _apply_clickhouse_schema(settings: Settings) -> None:
    """Creates the analytics tables; the client is closed at once, which releases a chDB
    folder (one process per folder) for the analytics worker that `up` starts next."""
    from clickhouse_connect.driver.exceptions import Error as ClickHouseError

    from sinks.clickhouse import apply_schema, get_client

    try:
        client = get_client(settings)
    except ClickHouseError as exc:
        # A running analytics worker owns the chDB folder and applies the schema itself.
        console.print(f"[yellow]skipped ClickHouse schema:[/yellow] {exc}")
        return
    try:
        applied = apply_schema(client)
    finally:
        client.close()
    console.print(f"clickhouse: [green]{len(applied)} statements applied[/green]")


def _ensure_topics(settings: Settings) -> None:
    """Create missing topics and reconcile the rest, saying what changed on the broker."""
    from producers.admin import reconcile_topics

    changes = reconcile_topics(settings)
    if changes.created:
        console.print(f"topics: [green]created[/green] {', '.join(changes.created)}")
    for name, (before, after) in changes.grown.items():
        console.print(f"topics: [yellow]{name}[/yellow] partitions {before} -> {after}")
    for name, config in changes.reconfigured.items():
        settings_text = ", ".join(f"{k}={v}" for k, v in config.items())
        console.print(f"topics: [yellow]{name}[/yellow] set {settings_text}")
    for warning in changes.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}")
    if not (changes.created or changes.grown or changes.reconfigured):
        console.print("topics: [green]up to date[/green]")


def _register_schemas() -> None:
    """`memestream schemas register` before any producer starts: an incompatible schema
    stops `up` here, not at a producer's first send."""
    from memestream.schemas_cli import run

    if not run(register=True):
        raise ServiceError("the schema registry refused a schema in schemas/ (see the table)")


def _app_processes(settings: Settings, stack: Stack) -> list[ManagedProcess]:
    """The API and every worker that has a pid file (or is the default render worker)."""
    if isinstance(stack, HaStack):
        return ha_apps(settings, stack.layout, stack.ports.api_replicas, list(WORKER_ROLES))
    procs: list[ManagedProcess] = [ApiProcess(settings, stack.layout)]
    run_dir = stack.layout.root / "run"
    roles = set(WORKER_ROLES)
    if run_dir.is_dir():
        roles |= {p.stem.removeprefix("worker-") for p in run_dir.glob("worker-*.pid")}
    procs += [WorkerProcess(settings, stack.layout, role) for role in sorted(roles)]
    return procs


def _app_statuses(settings: Settings, stack: Stack) -> list[Status]:
    return [p.status() for p in _app_processes(settings, stack)]


# `memestream stack ...`


@stack_app.command("start")
def stack_start(services: ServiceArgs = None, ha: HaOption = False) -> None:
    """Start the stores (idempotent: healthy ones are reused, stale ones restarted)."""
    stack = _stack(ha)
    with console.status("starting the stack (first run fetches Kafka and builds MinIO)..."):
        _stack_call(lambda: stack.start(services), "stack")


@stack_app.command("stop")
def stack_stop(services: ServiceArgs = None, ha: HaOption = False) -> None:
    """Stop the stores (SIGTERM, wait, then SIGKILL); their data stays."""
    stack = _stack(ha)
    _stack_call(lambda: stack.stop(services), "stack")


@stack_app.command("status")
def stack_status(services: ServiceArgs = None, ha: HaOption = False) -> None:
    """Show each store's URL, state and pid."""
    stack = _stack(ha)
    _stack_call(lambda: stack.status(services), "stack")


# Top-level commands.


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so `up` shuts down the same way for both."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command()
def up(
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Also run a Faust worker.")
    ] = True,
    role: Annotated[
        list[str] | None, typer.Option("--role", help="Worker role(s) to run (default: all).")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Leave everything running and return.")
    ] = False,
    ha: HaOption = False,
) -> None:
    """Start the stack, migrate, create topics, run the API and every worker; Ctrl-C stops."""
    stack = _stack(ha)
    if isinstance(stack, HaStack):
        _export_ha_settings(stack)
    settings = stack.settings
    roles = role or list(WORKER_ROLES)
    before = {st.name: st.state for st in stack.status()}
    started_here = [name for name, state in before.items() if state != State.RUNNING]
    apps: list[ManagedProcess] = [ApiProcess(settings, stack.layout)]
    if worker:
        apps += [WorkerProcess(settings, stack.layout, r) for r in roles]
    if isinstance(stack, HaStack):  # two API replicas behind HAProxy, two render workers
        apps = ha_apps(settings, stack.layout, stack.ports.api_replicas, roles if worker else None)

    with _sigterm_as_interrupt():
        try:
            with console.status("starting the stack..."):
                stack.start()
            _run_migrations(settings)
            _ensure_topics(settings)
            _register_schemas()
            with console.status("starting the API and workers..."):
                for proc in apps:
                    proc.start()
        except KeyboardInterrupt:
            _shutdown(stack, apps, started_here)
            raise typer.Exit(130) from None
        except (ServiceError, StackError) as exc:
            _shutdown(stack, apps, started_here)
            raise _fail(str(exc)) from exc

        console.print(_status_table([*stack.status(), *(p.status() for p in apps)]))
        console.print(f"logs: {stack.layout.root / 'logs'}")
        if detach:
            down_cmd = "memestream down --ha" if ha else "memestream down"
            console.print(f"running in the background; stop with [bold]{down_cmd}[/bold]")
            return
        console.print("press Ctrl-C to stop")
        code = 0
        try:
            while True:
                dead = [p for p in apps if p.process() is None]
                if dead:
                    for p in dead:
                        err_console.print(f"[red]{p.name} exited[/red]; see {p.console_log_path}")
                    code = 1
                    break
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        _shutdown(stack, apps, started_here)
        if code:
            raise typer.Exit(code)


def _shutdown(stack: Stack, apps: Sequence[ManagedProcess], stack_services: Sequence[str]) -> None:
    """Stop the apps, then the stores `up` itself started, ignoring further Ctrl-Cs."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with console.status("stopping..."):
            for proc in reversed(apps):
                proc.stop()
            if stack_services:
                with contextlib.suppress(StackError):
                    stack.stop(stack_services)
        console.print("stopped")
    finally:
        signal.signal(signal.SIGINT, previous)


@app.command()
def down(ha: HaOption = False) -> None:
    """Stop the API and workers left by `up --detach`, then the whole stack."""
    stack = _stack(ha)
    settings = stack.settings
    apps = _app_processes(settings, stack)
    for proc in reversed(apps):
        proc.stop()
    _stack_call(lambda: [*stack.stop(), *(p.status() for p in apps)], "stopped")


@app.command()
def status(ha: HaOption = False) -> None:
    """Show the stores, the API and the workers."""
    stack = _stack(ha)
    settings = stack.settings
    console.print(_status_table([*stack.status(), *_app_statuses(settings, stack)]))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def api(ctx: typer.Context) -> None:
    """Run the API server in the foreground (uvicorn); extra arguments go to uvicorn."""
    argv = api_command(get_settings(), list(ctx.args))
    os.chdir(PROJECT_ROOT)
    os.execv(argv[0], argv)


@app.command("worker")
def worker_cmd(
    role: Annotated[str, typer.Option("--role", help="Which agents to run.")] = "render",
) -> None:
    """Run one Faust worker in the foreground."""
    argv = worker_command(role)
    os.chdir(PROJECT_ROOT)
    os.execv(argv[0], argv)


@app.command()
def migrate() -> None:
    """Apply the PostgreSQL migrations and the ClickHouse schema."""
    _run_migrations(get_settings())


@app.command()
def rebuild(
    roles: Annotated[
        list[str],
        typer.Argument(help="trending (Redis) and/or analytics (ClickHouse).", show_default=False),
    ],
    since: Annotated[
        datetime | None,
        typer.Option(help="Replay only what Kafka received from then on (UTC; default: all)."),
    ] = None,
    ha: HaOption = False,
) -> None:
    """Rebuild derived stores from Kafka: stop the role's workers, run this, start them again."""
    from streams.rebuild import RebuildError
    from streams.rebuild import rebuild as rebuild_role

    if ha:
        _export_ha_settings(HaStack(get_settings()))
    settings = get_settings()
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    for role in dict.fromkeys(roles):
        try:
            done = rebuild_role(settings, role, since)
        except RebuildError as exc:
            err_console.print(f"[red]rebuild {role}: {exc}")
            raise typer.Exit(1) from None
        cleared = (
            [*done.deleted_topics, f"{done.deleted_keys} Redis keys"] if role == "trending" else []
        )
        replay = ", ".join(f"{topic} {count:,}" for topic, count in done.replay.items())
        console.print(
            f"{role}: group {done.group} rewound to the oldest retained events"
            f" ({done.events:,} to replay: {replay or 'no topics yet'})"
            + (f"; cleared {', '.join(cleared)}" if cleared else "")
        )
    console.print("start the workers (`memestream up`) and they recompute the stores")


@app.command()
def topics(
    create: Annotated[
        bool,
        typer.Option(
            "--create/--no-create",
            help="Create missing topics and reconcile partitions and configs in Kafka first.",
        ),
    ] = True,
) -> None:
    """Make Kafka's topics match the registry (idempotent) and list them."""
    if create:
        _ensure_topics(get_settings())
    from producers.topics import ALL_TOPICS

    table = Table(title="topics", title_justify="left")
    for column in ("topic", "partitions", "value", "retention", "cleanup"):
        table.add_column(column)
    for spec in ALL_TOPICS:
        days = spec.retention_ms / 86_400_000
        table.add_row(
            spec.name,
            str(spec.partitions),
            spec.value_schema or "bytes",
            f"{days:g}d",
            spec.config()["cleanup.policy"],
        )
    console.print(table)


def main() -> None:
    app(prog_name="memestream")


if __name__ == "__main__":
    main()
