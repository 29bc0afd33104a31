"""`memestream loadgen record|replay`: the Typer sub-app mounted by memestream/cli.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from domain.settings import get_settings
from loadgen.keda import load_scaled_objects, with_group_prefix
from loadgen.lag import LagReader
from loadgen.memory import RssSampler, discover_pids
from loadgen.record import record as record_trace
from loadgen.replay import Observer, ReplayResult, Target, replay
from loadgen.report import build, write_html, write_json
from loadgen.scenarios import SCENARIOS
from loadgen.trace import read_header, read_trace
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
            help="none | needed (users log in to vote or upload) | all (every user logs in).",
        ),
    ] = "needed",
    max_in_flight: Annotated[int, typer.Option("--max-in-flight")] = 20_000,
    timeout: Annotated[float, typer.Option("--timeout", help="Per-request timeout, s.")] = 30.0,
    live: Annotated[bool, typer.Option("--live/--no-live", help="Live progress display.")] = True,
) -> None:
    """Replay a trace open-loop and write the JSON + HTML report."""
    if not trace.is_file():
        raise typer.BadParameter(f"no trace at {trace}")
    settings = get_settings()
    runner: Target
    if target == "kafka":
        from loadgen.kafka_target import KafkaTarget

        runner = KafkaTarget(settings)
    else:
        from loadgen.rest_target import RestTarget

        runner = RestTarget(target, timeout_s=timeout, headers=_headers(header), auth=auth)
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
    records = list(read_trace(trace))
    duration = (records[-1].at / speed) if records else 0.0
    result: ReplayResult

    async def go(tick: object = None) -> ReplayResult:
        return await replay(
            records,
            runner,
            speed=speed,
            max_in_flight=max_in_flight,
            observer=observer,
            tick=tick,  # type: ignore[arg-type]
            header=trace_header,
        )

    if live and console.is_terminal:
        from loadgen.progress import LiveProgress

        with LiveProgress(len(records), duration, console) as progress:
            result = asyncio.run(go(progress.tick))
    else:
        result = asyncio.run(go())
    data = build(result, scaled)
    json_path, html_path = report.with_suffix(".json"), report.with_suffix(".html")
    write_json(data, json_path)
    write_html(data, html_path)
    console.print(f"report: {json_path} {html_path}")
    print(data["summary"])
