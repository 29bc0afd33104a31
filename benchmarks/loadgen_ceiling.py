"""The load generator's own ceiling: the highest rate it replays on schedule.

A synthetic open-loop trace (Poisson arrivals, 1,000 users) is replayed at increasing rates
against the API's bare endpoint (`GET /api/_bare`: same app, middleware and server, no I/O),
so the platform does as little as possible and the generator is what gets measured. A rate
passes when the generator's lateness p99 is at most 10 ms and no request failed on the client
side (5xx, timeouts, resets); the ceiling is the highest passing rate below the first that
fails twice. Target (DESIGN.md): at least 3x the heaviest scenario's peak rate, computed from
loadgen/scenarios.py.

The old engine (httpx, before issue 16) is measured in the same run for comparison: its REST
target is loaded from git history into a temporary module (it is not kept in the product) and
driven by today's scheduler, which measures its lateness the same way.

The API runs as ONE uvicorn process on this machine (rate limiting off), or pass `--url` of a
running one. On 2 cores the API and the generator share the machine; a rate the API itself
cannot serve shows as lateness too (connections stay busy), so the figure is a lower bound.

    .venv/bin/python -m benchmarks.loadgen_ceiling [--duration 5] [--processes 1 2] [--url ...]
    (BENCH_QUICK=1: 3 s steps)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import uvloop

from benchmarks._result import Result, emit
from domain.settings import PROJECT_ROOT, get_settings
from loadgen.record import build
from loadgen.replay import ReplayResult, Target, replay
from loadgen.report import MAX_LATENESS_P99_S
from loadgen.rest_target import RestTarget, Route
from loadgen.scenarios import SCENARIOS
from loadgen.stats import Outcome
from loadgen.trace import TraceHeader, TraceRecord, write_trace
from loadgen.workers import RestSpec, replay_processes
from memestream.testing.environment import environment
from memestream.testing.processes import free_port, process, wait_for_http

BARE = {"trending": Route("GET", "/api/_bare")}
RATES = (50, 100, 250, 500, 750, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000)


def peak_rates() -> dict[str, float]:
    """Each scenario's nominal peak (users x actions per user per second) at scale 1."""
    return {n: s.peak_users * s.rate_per_user for n, s in SCENARIOS.items()}


def busiest_second(scenario: str) -> int:
    """Most actions in any one second of the scenario's trace at scale 1 (seed 1)."""
    _, records = build(scenario, 1, 1.0)
    counts: dict[int, int] = {}
    for r in records:
        counts[int(r.at)] = counts.get(int(r.at), 0) + 1
    return max(counts.values())


def synthetic(rate: float, duration_s: float, seed: int = 1) -> list[TraceRecord]:
    rng = random.Random(seed)
    records, t, seq = [], 0.0, 0
    while (t := t + rng.expovariate(rate)) < duration_s:
        user = f"u{rng.randrange(1000):05d}"
        records.append(TraceRecord(at=round(t, 6), user=user, action="trending", seq=seq))
        seq += 1
    return records


def old_engine() -> ModuleType | None:
    """The httpx REST target as it was before the aiohttp engine, from git history."""
    try:
        removed = subprocess.run(
            ["git", "log", "-1", "--format=%H", "-S", "import httpx", "--",
             "loadgen/rest_target.py"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        source = subprocess.run(
            ["git", "show", f"{removed}~1:loadgen/rest_target.py"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    if not removed or "import httpx" not in source:
        return None
    path = Path(tempfile.mkdtemp()) / "old_rest_target.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_rest_target", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def httpx_target(module: ModuleType, url: str) -> Target:
    class Pinned(module.RestTarget):  # type: ignore[name-defined,misc]
        async def setup(self) -> None:  # the bare route is not in /openapi.json
            self.routes = dict(BARE)

    return Pinned(url, auth="none")  # type: ignore[no-any-return]


class NullTarget:
    """Answers after 1 ms without any network: what the scheduler alone achieves here."""

    name = "null"

    async def setup(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def execute(self, record: TraceRecord, meme_id: str | None) -> Outcome:
        await asyncio.sleep(0.001)
        return Outcome(status=200)


def noise_floor(duration_s: float) -> str:
    """Lateness of the scheduler with no client at all: the machine's own share of it."""
    result = uvloop.run(replay(synthetic(500, duration_s), NullTarget()))
    late = result.stats.lateness
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"machine noise floor (null target, 500/s): lateness p50 {late.percentile(50) * 1000:.1f}"
        f" / p99 {late.percentile(99) * 1000:.1f} ms; load average {load}"
    )


def verdict(result: ReplayResult) -> tuple[bool, str]:
    stats = result.stats
    late = stats.lateness.percentile(99)
    saturated = sum(a.skipped.get("client saturated", 0) for a in stats.actions.values())
    ok = late <= MAX_LATENESS_P99_S and stats.errors == 0 and saturated == 0 and stats.sent > 0
    figure = (
        f"sent {stats.sent:,} in {result.duration_s:.1f} s, lateness p99 {late * 1000:.1f} ms, "
        f"latency p50 {stats.overall.percentile(50) * 1000:.1f} / p99 "
        f"{stats.overall.percentile(99) * 1000:.1f} ms, errors {stats.errors}, "
        f"waited for a connection {stats.queued}"
    )
    return ok, figure


Run = Callable[[float], ReplayResult]


def ceiling(name: str, run: Run, rates: tuple[int, ...]) -> int:
    """Highest rate that passes; a failing rate is retried once (this machine is shared)."""
    best = 0
    for rate in rates:
        for _attempt in (1, 2):
            ok, figure = verdict(run(rate))
            print(f"  {name} at {rate:>5}/s: {'ok  ' if ok else 'FAIL'} {figure}", flush=True)
            if ok:
                break
        if not ok:
            break
        best = rate
    return best


@contextmanager
def bare_api(url: str | None) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    settings = get_settings()
    port = free_port()
    env = environment(settings) | {
        "API_PORT": str(port),
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    args = ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--loop", "uvloop", "--http", "httptools"]  # fmt: skip
    with process("bench-loadgen-api", args, env) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", proc)
        yield base


def main() -> None:
    quick = os.environ.get("BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a running API (its /api/_bare is replayed)")
    parser.add_argument("--duration", type=float, default=3.0 if quick else 5.0)
    parser.add_argument("--processes", type=int, nargs="+", default=[1])
    parser.add_argument("--no-old", action="store_true", help="skip the old httpx engine")
    args = parser.parse_args()
    nproc = os.cpu_count() or 1
    peaks = peak_rates()
    heaviest = max(peaks, key=lambda n: peaks[n])
    peak = peaks[heaviest]
    busiest = busiest_second(heaviest)
    print(f"nproc {nproc}; heaviest scenario {heaviest}: peak {peak:g} actions/s nominal, "
          f"{busiest} in its busiest second (scale 1, seed 1)", flush=True)  # fmt: skip
    floors = [noise_floor(args.duration)]
    print(floors[0], flush=True)
    ceilings: dict[str, int] = {}
    with bare_api(args.url) as url, tempfile.TemporaryDirectory() as tmp:

        def new(processes: int) -> Run:
            def run(rate: float) -> ReplayResult:
                records = synthetic(rate, args.duration)
                connections = 1000
                if processes == 1:
                    target = RestTarget(url, routes=BARE, connections=connections, timeout_s=10)
                    return uvloop.run(replay(records, target))
                path = Path(tmp) / f"trace-{rate}.jsonl"
                header = TraceHeader("synthetic", 1, 1.0, args.duration, len(records))
                write_trace(path, header, records)
                spec = RestSpec(url, timeout_s=10, connections=connections, routes=dict(BARE))
                return uvloop.run(replay_processes(path, spec, processes=processes))

            return run

        for processes in args.processes:
            name = f"aiohttp x{processes}"
            ceilings[name] = ceiling(name, new(processes), RATES)
        module = None if args.no_old else old_engine()
        if module is not None:

            def old(rate: float) -> ReplayResult:
                return uvloop.run(replay(synthetic(rate, args.duration), httpx_target(module, url)))

            ceilings["httpx x1 (old engine)"] = ceiling("httpx x1 (old engine)", old, RATES)
        elif not args.no_old:
            print("old engine: not found in git history, skipped")
    floors.append(noise_floor(args.duration))
    print(floors[-1])
    print()
    for name, rate in ceilings.items():
        print(f"{name:>24}: ceiling {rate:,}/s = {rate / peak:.1f}x the {heaviest} peak "
              f"({peak:g}/s), {rate / busiest:.1f}x its busiest second ({busiest}/s); "
              f"nproc {nproc}")  # fmt: skip
    best_name = max((n for n in ceilings if "old" not in n), key=lambda n: ceilings[n])
    best = ceilings[best_name]
    results: list[Result] = [
        {
            "target": "load_generator",
            "value": round(best / peak, 1),
            "unit": "x peak",
            "figure": f"{best:,}/s on schedule ({best_name}; lateness p99 <= 10 ms) = "
            f"{best / peak:.1f}x the {heaviest} peak of {peak:g}/s"
            + "".join(f"; {n}: {r:,}/s" for n, r in ceilings.items() if n != best_name),
            "method": f"synthetic open-loop trace at rising rates ({args.duration:g} s steps) "
            "against GET /api/_bare of one uvicorn process on the same machine; highest rate "
            f"with lateness p99 <= 10 ms and no client-side errors; {floors[0]}",
        }
    ]
    emit("loadgen_ceiling", results)


if __name__ == "__main__":
    t0 = time.monotonic()
    try:
        main()
    finally:
        print(f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)
