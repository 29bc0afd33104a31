"""Failover under load on the replicated stack: `python -m benchmarks.ha_failover`.

Runs `memestream up --ha` in a PRIVATE tmp folder on free ports (memestream/testing/failover.py; the
shared stack is never touched), then replays a mixed trace once per fault while one node is
killed (loadgen/chaos.py's runner): a Kafka broker, the active KRaft controller, the
PostgreSQL primary, the Redis master, one MinIO drive (its folder moved away), one API
replica, one render worker, each restarted after `--hold` seconds (as Kubernetes would) so
the failover is what is measured. Writes reports/ha/failover.{json,html} with
`faults.<name>`: `lost`, `duplicated_effects`, `unavailable_s` (longest stretch of errors,
overall and per function), `client_errors` by status, `noticed` (the log line that shows the
platform reacting) and the host's load. `--quick` is the CI size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.settings import PROJECT_ROOT
from loadgen.accounts import provision
from loadgen.chaos import ChaosPlan, run, users_of
from loadgen.chaos_report import write_html, write_json
from loadgen.host import HostLoad, watch
from memestream.testing.failover import FAILOVER_FAULTS, FailoverPlatform, private_ha_platform

FULL = ChaosPlan(segment_s=75.0, at_s=10.0, users=20, drain_wait_s=90.0, settle_s=20.0)
QUICK = ChaosPlan(segment_s=45.0, at_s=8.0, users=8, drain_wait_s=60.0, settle_s=10.0)
HOLD_S = 20.0


def longest_unavailable_s(fault: dict[str, Any]) -> float:
    """The longest stretch in which any function answered errors."""
    return max((v or 0.0 for v in fault["unavailable_s"].values()), default=0.0)


def annotate(platform: FailoverPlatform, name: str, result: dict[str, Any]) -> None:
    """What the issue asks per fault, beside the runner's own figures."""
    result["victim"] = platform.victims.get(name)
    result["noticed"] = platform.noticed.get(name)
    result["client_errors"] = result["errors_by_status"]
    result["unavailable_s"] = {
        "any": longest_unavailable_s(result),
        "by_function": result["unavailable_s"],
    }


async def measure(
    platform: FailoverPlatform, plan: ChaosPlan, faults: tuple[str, ...]
) -> dict[str, Any]:
    accounts = await provision(platform.settings, users_of(plan, faults))
    host, stop = HostLoad(), asyncio.Event()
    watcher = asyncio.create_task(watch(host, stop))

    def progress(name: str, result: dict[str, Any]) -> None:
        annotate(platform, name, result)
        shown = {k: result[k] for k in ("lost", "duplicated_effects", "client_errors", "victim")}
        print(
            f"{name}: {shown} unavailable {result['unavailable_s']['any']} s;"
            f" noticed: {result['noticed']}",
            flush=True,
        )

    try:
        report = await run(platform, plan, accounts.keys, faults, progress)
    finally:
        stop.set()
        await watcher
    report["host"] = host.as_dict()
    report["hold_s"] = platform.hold_s
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=bool(os.environ.get("BENCH_QUICK")))
    parser.add_argument("--report", type=Path, default=PROJECT_ROOT / "reports/ha/failover")
    parser.add_argument("--fault", action="append", choices=FAILOVER_FAULTS)
    parser.add_argument("--hold", type=float, default=HOLD_S, help="seconds before a restart")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    faults = tuple(args.fault or FAILOVER_FAULTS)
    started = time.monotonic()
    print(f"nproc {os.cpu_count()}; load average {os.getloadavg()}", flush=True)
    with private_ha_platform() as (stack, env):
        os.environ.update(env)  # what a restarted API replica or worker reads, as under `up`
        platform = FailoverPlatform(stack, hold_s=args.hold)
        report = asyncio.run(measure(platform, plan, faults))
    report["run"] = {
        "finished_at": datetime.now(UTC).isoformat(),
        "wall_s": round(time.monotonic() - started, 1),
        "quick": args.quick,
        "nproc": os.cpu_count(),
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    write_json(report, args.report.with_suffix(".json"))
    write_html(report, args.report.with_suffix(".html"))
    print(f"report: {args.report}.json/.html; host {report['host']['load_avg_1m_mean']} mean load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
