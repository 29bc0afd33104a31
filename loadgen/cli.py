"""`memestream loadgen record|replay`: the Typer sub-app mounted by memestream/cli.py."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
import uvloop
from rich.console import Console

from domain.settings import Settings, get_settings
from loadgen.accounts import Accounts, provision, revoke
from loadgen.keda import load_scaled_objects, with_group_prefix
from loadgen.lag import LagReader
from loadgen.ledger import Ledger, LedgerCheck, check_sync
from loadgen.memory import RssSampler, discover_pids
from loadgen.progress import LiveProgress
from loadgen.record import record as record_trace
from loadgen.replay import Observer, ReplayResult, Target, replay
from loadgen.report import build, write_html, write_json
from loadgen.rest_target import NEEDS_ACCOUNT
from loadgen.scenarios import SCENARIOS
from loadgen.trace import TraceHeader, read_header, read_trace
from loadgen.workers import RestSpec, replay_processes
from producers.kafka_security import librdkafka_security

app = typer.Typer(help="Record load traces and replay them open-loop.", no_args_is_help=True)
console = Console()


@app.command("record")
def record_cmd(
    scenario: Annotated[
        str, typer.Option("--scenario", help=f"One of: {', '.join(SCENARIOS)}.")
    ] = "burst",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same trace.")] = 1,
    output: Annotated[Path, typer.Option("-o", "--output", help="Trace file (JSONL).")] = Path(
        "trace.jsonl"
    ),
    scale: Annotated[
        float, typer.Option("--scale", help="Shrink time and users (0.01 for a short CI run).")
    ] = 1.0,
) -> None:
    """Write a deterministic trace of a scenario."""
    try:
        header = record_trace(scenario, seed, output, scale)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console.print(
        f"{output}: {header.records:,} records over {header.duration_s:,.1f} s "
        f"({header.scenario}, seed {header.seed}, scale {header.scale:g})"
    )


def _headers(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        name, sep, content = value.partition(":")
        if not sep:
            raise typer.BadParameter(f"--header takes 'Name: value', got {value!r}")
        out[name.strip()] = content.strip()
    return out


def _pids(values: list[str] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values or []:
        name, sep, pid = value.rpartition("=")
        out[name if sep else f"pid-{pid}"] = int(pid)
    return out


AUTH_MODES = ("users", "anonymous", "none")


def _credentials(
    settings: Settings, trace: Path, auth: str
) -> tuple[Accounts | None, dict[str, str]]:
    """API keys for the trace users `auth` asks for (see loadgen/accounts.py)."""
    if auth == "none":
        return None, {}
    users = {r.user for r in read_trace(trace) if auth == "users" or r.action in NEEDS_ACCOUNT}
    if not users:
        return None, {}
    accounts = asyncio.run(provision(settings, users))
    console.print(f"{len(accounts.keys):,} trace users have an API key (run {accounts.run_id})")
    return accounts, accounts.keys


@app.command("replay")
def replay_cmd(
    trace: Annotated[Path, typer.Argument(help="A trace written by `loadgen record`.")],
    target: Annotated[
        str, typer.Option("--target", help="API base URL, or 'kafka' to produce directly.")
    ] = "http://127.0.0.1:8000",
    speed: Annotated[float, typer.Option("--speed", help="2 replays twice as fast.")] = 1.0,
    report: Annotated[
        Path, typer.Option("--report", help="Report path stem: writes .json and .html.")
    ] = Path("artifacts/loadgen-report"),
    group_prefix: Annotated[
        str | None,
        typer.Option("--group-prefix", help="Consumer group prefix of the workers to watch."),
    ] = None,
    watch_pid: Annotated[
        list[str] | None,
        typer.Option("--watch-pid", help="NAME=PID to sample RSS (default: `memestream up`'s)."),
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", help="Extra request header 'Name: value'.")
    ] = None,
    auth: Annotated[
        str,
        typer.Option(
            "--auth",
            help="users: every trace user sends its own API key (per-user limits, as in "
            "production) | anonymous: only votes and uploads authenticate | none.",
        ),
    ] = "users",
    processes: Annotated[
        int,
        typer.Option(
            "--processes", help="Replay processes (REST), each replaying a share of the users."
        ),
    ] = 1,
    connections: Annotated[
        int, typer.Option("--connections", help="Connection pool size, over all processes.")
    ] = 1000,
    max_in_flight: Annotated[int, typer.Option("--max-in-flight")] = 20_000,
    timeout: Annotated[float, typer.Option("--timeout", help="Per-request timeout, s.")] = 30.0,
    live: Annotated[bool, typer.Option("--live/--no-live", help="Live progress display.")] = True,
    drain_wait: Annotated[
        float,
        typer.Option(
            "--drain-wait",
            help="Seconds to wait, at most, for accepted memes to reach a final status before "
            "the ledger counts what was lost (0: no ledger check).",
        ),
    ] = 120.0,
) -> None:
    """Replay a trace open-loop and write the JSON + HTML report."""
    if not trace.is_file():
        raise typer.BadParameter(f"no trace at {trace}")
    if auth not in AUTH_MODES:
        raise typer.BadParameter(f"--auth is one of {', '.join(AUTH_MODES)}")
    if processes < 1 or (processes > 1 and target == "kafka"):
        raise typer.BadParameter("--processes is at least 1, and 1 with --target kafka")
    settings = get_settings()
    scaled = with_group_prefix(
        load_scaled_objects(), group_prefix or settings.consumer_group_prefix
    )
    pairs = sorted({(t.consumer_group, t.topic) for so in scaled for t in so.kafka_triggers})
    pids = _pids(watch_pid) or discover_pids(settings.stack_path)
    observer = Observer(
        lag_reader=LagReader(
            settings.kafka_bootstrap_servers, security=librdkafka_security(settings)
        ),
        lag_pairs=pairs,
        scaled_objects=scaled,
        rss=RssSampler(pids) if pids else None,
    )
    trace_header = read_header(trace)
    accounts, credentials = (None, {}) if target == "kafka" else _credentials(settings, trace, auth)
    try:
        result = _run(
            trace, trace_header, target, settings, observer,
            RestSpec(target, timeout, _headers(header), connections, credentials),
            speed=speed, processes=processes, max_in_flight=max_in_flight, live=live,
        )  # fmt: skip
    finally:
        if accounts is not None:
            asyncio.run(revoke(settings, accounts))
    checked: LedgerCheck | None = None
    if drain_wait > 0:
        ledger = Ledger(
            started_at=datetime.fromisoformat(result.started_at),
            memes=list(result.stats.created),
            # Votes sent straight to Kafka never pass the API's PostgreSQL write.
            votes=[] if target == "kafka" else list(result.stats.votes),
        )
        console.print(
            f"ledger: {len(ledger.memes):,} accepted memes, {len(ledger.votes):,} accepted "
            f"votes; waiting up to {drain_wait:g} s for the platform to drain"
        )
        checked = check_sync(settings, ledger, wait_s=drain_wait)
    data = build(result, scaled, checked)
    json_path, html_path = report.with_suffix(".json"), report.with_suffix(".html")
    write_json(data, json_path)
    write_html(data, html_path)
    console.print(f"report: {json_path} {html_path}")
    print(data["summary_line"])
    print(orjson.dumps(data["summary"]).decode())


def _run(
    trace: Path,
    trace_header: TraceHeader | None,
    target: str,
    settings: Settings,
    observer: Observer,
    spec: RestSpec,
    *,
    speed: float,
    processes: int,
    max_in_flight: int,
    live: bool,
) -> ReplayResult:
    total = trace_header.records if trace_header else 0
    duration = (trace_header.duration_s / speed) if trace_header else 0.0
    progress: LiveProgress | None = None
    if live and console.is_terminal:
        progress = LiveProgress(total, duration, console)
    tick = progress.tick if progress is not None else None

    async def go() -> ReplayResult:
        if target != "kafka":
            # Even one worker is a process of its own: lag and RSS sampling and the live
            # display stay out of the loop that keeps the schedule (they made it late).
            return await replay_processes(
                trace, spec, processes=processes, speed=speed, max_in_flight=max_in_flight,
                observer=observer, tick=tick, header=trace_header,
            )  # fmt: skip
        from loadgen.kafka_target import KafkaTarget

        runner: Target = KafkaTarget(settings)
        return await replay(
            list(read_trace(trace)), runner, speed=speed, max_in_flight=max_in_flight,
            observer=observer, tick=tick, header=trace_header,
        )  # fmt: skip

    with progress if progress is not None else contextlib.nullcontext():
        return uvloop.run(go())
