"""`memestream loadgen record|replay`: the Typer sub-app mounted by memestream/cli.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
import uvloop
from rich.console import Console

from domain.settings import Settings, get_settings
from loadgen import cache_ratio, feed_probe
from loadgen.accounts import Accounts, provision, revoke
from loadgen.host import HostLoad, watch
from loadgen.keda import load_scaled_objects, with_group_prefix
from loadgen.lag import LagReader
from loadgen.ledger import Ledger, LedgerCheck, check
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
        run = _run(
            trace, trace_header, target, settings, observer,
            RestSpec(target, timeout, _headers(header), connections, credentials),
            speed=speed, processes=processes, max_in_flight=max_in_flight, live=live,
            drain_wait=drain_wait,
        )  # fmt: skip
    finally:
        if accounts is not None:
            asyncio.run(revoke(settings, accounts))
    data = build(
        run.result, scaled, run.ledger, feed=run.feed, cache=run.cache, host=run.host.as_dict()
    )
    json_path, html_path = report.with_suffix(".json"), report.with_suffix(".html")
    write_json(data, json_path)
    write_html(data, html_path)
    console.print(f"report: {json_path} {html_path}")
    print(data["summary_line"])
    print(orjson.dumps(data["summary"]).decode())
    print(f"host: {run.host.line()}")


@app.command("run")
def run_cmd(
    scenario: Annotated[
        list[str],
        typer.Option("--scenario", help=f"One or more of: {', '.join(SCENARIOS)} (in order)."),
    ],
    scale: Annotated[float, typer.Option("--scale", help="Trace scale (1: the plan's).")] = 1.0,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Reports go to <out>/<scenario>.{json,html}.")
    ] = Path("reports/load"),
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="A running API to load instead of a private platform (its stores are the "
            "ones this environment's settings name).",
        ),
    ] = None,
    processes: Annotated[int, typer.Option("--processes")] = 1,
    drain_wait: Annotated[float, typer.Option("--drain-wait")] = 120.0,
    live: Annotated[bool, typer.Option("--live/--no-live")] = False,
) -> None:
    """Record each scenario's trace, start a private platform (`memestream up` on its own
    stack folder and ports; none is stopped but its own), replay, write the reports."""
    from loadgen.private_platform import private_platform

    for name in scenario:
        if name not in SCENARIOS:
            raise typer.BadParameter(f"--scenario is one of {', '.join(SCENARIOS)}")
    traces = Path("artifacts/load")
    traces.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in scenario:
        paths[name] = traces / f"{name}-x{scale:g}-seed{seed}.jsonl"
        if not paths[name].is_file():
            header = record_trace(name, seed, paths[name], scale)
            console.print(f"{paths[name]}: {header.records:,} records over {header.duration_s:g} s")

    def replay_one(name: str, url: str) -> None:
        console.print(f"[bold]{name}[/bold] x{scale:g} -> {url} ({_host_line()})")
        replay_cmd(
            paths[name], target=url, speed=1.0, report=out_dir / name, group_prefix=None,
            watch_pid=None, header=None, auth="users", processes=processes,
            connections=1000, max_in_flight=20_000, timeout=30.0, live=live,
            drain_wait=drain_wait,
        )  # fmt: skip

    failed = []
    for name in scenario:
        try:
            if target is not None:
                replay_one(name, target)
                continue
            # A platform per scenario: one run's backlog must not become the next one's load.
            with private_platform(name) as (url, env):
                os.environ.update(env)
                get_settings.cache_clear()
                console.print(f"private platform at {url} (stack {env['STACK_DIR']})")
                replay_one(name, url)
        except Exception as exc:  # one scenario's failure must not cost the others their run
            console.print(f"[red]{name} failed: {type(exc).__name__}: {exc}[/red]")
            failed.append(name)
    if failed:
        raise typer.Exit(1)


def _host_line() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


@dataclass(slots=True)
class Run:
    """A replay and what was measured around it."""

    result: ReplayResult
    host: HostLoad
    ledger: LedgerCheck | None = None
    feed: dict[str, object] | None = None
    cache: dict[str, object] | None = None


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
    drain_wait: float = 0.0,
) -> Run:
    total = trace_header.records if trace_header else 0
    duration = (trace_header.duration_s / speed) if trace_header else 0.0
    progress: LiveProgress | None = None
    if live and console.is_terminal:
        progress = LiveProgress(total, duration, console)
    tick = progress.tick if progress is not None else None

    async def replay_trace() -> ReplayResult:
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

    async def go() -> Run:
        host = HostLoad()
        stop_host, stop_feed = asyncio.Event(), asyncio.Event()
        watching = asyncio.create_task(watch(host, stop_host))
        rest = target != "kafka"
        before = await cache_ratio.scrape(target) if rest else {}
        # The feed probe stays open through the drain: memes rendered then are events too.
        probe = asyncio.create_task(feed_probe.follow(target, stop_feed)) if rest else None
        try:
            result = await replay_trace()
            after = await cache_ratio.scrape(target) if rest else {}
            checked = None
            if drain_wait > 0:
                ledger = Ledger(
                    started_at=datetime.fromisoformat(result.started_at),
                    memes=list(result.stats.created),
                    # Votes sent straight to Kafka never pass the API's PostgreSQL write.
                    votes=list(result.stats.votes) if rest else [],
                    sent_votes=list(result.stats.sent_votes) if rest else [],
                )
                console.print(
                    f"ledger: {len(ledger.memes):,} accepted memes, {len(ledger.votes):,} "
                    f"accepted votes; waiting up to {drain_wait:g} s for the platform to drain"
                )
                checked = await check(settings, ledger, wait_s=drain_wait)
        finally:
            stop_feed.set()
            stop_host.set()
            feed = await probe if probe is not None else None
            await watching
        return Run(
            result=result,
            host=host,
            ledger=checked,
            feed=feed.as_dict() if feed is not None else None,
            cache=cache_ratio.ratio(before, after) if before or after else None,
        )

    with progress if progress is not None else contextlib.nullcontext():
        return uvloop.run(go())
