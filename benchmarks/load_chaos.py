"""Chaos while requests arrive, on a PRIVATE stack: `python -m benchmarks.load_chaos`.

Starts its own Kafka, PostgreSQL and Redis (own STACK_DIR under /tmp, free ports: see
memestream/testing/private_stack.py; the shared stack is never touched), an API and a render
worker, then replays a mixed trace once per fault while the fault hits (loadgen/chaos.py):
SIGKILL of the render worker, a Kafka restart, Redis stopped 30 s, PostgreSQL stopped 30 s. Writes
reports/load/chaos.{json,html} (`--report` to change) with `summary.faults.<name>`.

`BENCH_QUICK=1` (or `--quick`) is the CI size: 20 s segments, 4 s outages, 25 users.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks._result import emit
from domain.settings import PROJECT_ROOT
from loadgen.accounts import provision
from loadgen.chaos import FAULTS, ChaosPlan, run, users_of
from loadgen.chaos_report import write_html, write_json
from memestream.testing.private_stack import PrivateStack, running_private_stack
from producers.roles import RENDER

FULL = ChaosPlan()
QUICK = ChaosPlan(
    segment_s=20.0, at_s=5.0, outage_s=4.0, users=25, drain_wait_s=90.0, settle_s=30.0
)
#: How long a live render worker may be out of its consumer group before it counts as hung
#: (a liveness probe's period times its failure threshold, with room for a slow rejoin).
OUTSIDE_S = 60.0
STORES = {"kafka_restart": "kafka", "redis_stop_30s": "redis", "postgres_stop_30s": "postgres"}


class PrivatePlatform:
    """A private stack's API and render worker, broken on purpose (loadgen.chaos.Platform)."""

    def __init__(self, stack: PrivateStack) -> None:
        self.stack = stack
        self.settings = stack.settings
        self.api_url, self.api = stack.api("api-load-chaos")
        self.prefix, self.worker = stack.worker("worker-load-chaos")
        self.generation = 0
        self._gone: set[str] = set()  # the killed worker's member ids, for its replacement
        self._outside_since: float | None = None  # since when the worker is out of its group

    def inject(self, fault: str) -> None:
        if fault == "render_worker_sigkill":
            self._gone = self._members() or set()
            self.stack.kill(self.worker, signal.SIGKILL)
        else:
            self.stack.stop([STORES[fault]])

    def lift(self, fault: str) -> None:
        if fault == "render_worker_sigkill":
            self._replace(self._gone)
        else:
            self.stack.start([STORES[fault]])

    def supervise(self) -> list[str]:
        restarted = []
        if not self.api.alive():
            self.api_url, self.api = self.stack.api(f"api-load-chaos-{self._next()}")
            restarted.append("api")
        members = self._members()
        # Out of its group for OUTSIDE_S (a crashed Faust app whose process hangs, not one
        # rejoining after a broker restart): what a liveness probe on membership replaces.
        now = time.monotonic()
        if members != set():
            self._outside_since = None
        elif self._outside_since is None:
            self._outside_since = now
        hung = self._outside_since is not None and now - self._outside_since >= OUTSIDE_S
        if not self.worker.alive() or hung:
            self.stack.kill(self.worker, signal.SIGKILL)
            self._replace(members or set())
            self._outside_since = None
            restarted.append("render worker")
        return restarted

    def _next(self) -> int:
        self.generation += 1
        return self.generation

    def _members(self) -> set[str] | None:
        """The render group's members; None when Kafka cannot say (down, restarting)."""
        try:
            return self.stack.members(RENDER.group_id_for(self.prefix))
        except Exception:
            return None

    def _replace(self, gone: set[str]) -> None:
        """The supervisor's replacement, in the same group; returns once it has partitions."""
        _, self.worker = self.stack.worker(
            f"worker-load-chaos-{self._next()}", prefix=self.prefix, replaces=gone
        )


def host() -> dict[str, Any]:
    return {"nproc": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=bool(os.environ.get("BENCH_QUICK")))
    parser.add_argument("--report", type=Path, default=PROJECT_ROOT / "reports/load/chaos")
    parser.add_argument("--fault", action="append", choices=FAULTS, help="only these faults")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    faults = tuple(args.fault or FAULTS)
    before = host()
    print(f"nproc {before['nproc']}; load average {before['load_average']}", flush=True)
    started = time.monotonic()
    with running_private_stack() as stack:
        platform = PrivatePlatform(stack)
        accounts = asyncio.run(provision(stack.settings, users_of(plan, faults)))

        def progress(name: str, result: dict[str, Any]) -> None:
            shown = {k: result[k] for k in ("lost", "duplicated_effects", "errors_by_status")}
            print(f"{name}: {shown} recovery {result['recovery_s']} s", flush=True)

        report = asyncio.run(run(platform, plan, accounts.keys, faults, progress))
    report["host"] = {"before": before, "after": host()}
    report["run"] = {
        "finished_at": datetime.now(UTC).isoformat(),
        "wall_s": round(time.monotonic() - started, 1),
        "quick": args.quick,
    }
    write_json(report, args.report.with_suffix(".json"))
    write_html(report, args.report.with_suffix(".html"))
    summary = report["summary"]
    print(f"report: {args.report}.json/.html; load average {report['host']['after']}")
    emit(
        "load_chaos",
        [
            {
                "target": "chaos_lost",
                "value": summary["lost"],
                "unit": "writes",
                "figure": f"{summary['lost']} lost, {summary['duplicated_effects']} duplicated "
                f"effects over {len(faults)} faults",
                "method": "mixed trace replayed open-loop on a private stack while the render "
                "worker is SIGKILLed, Kafka restarted, Redis and PostgreSQL stopped; ledger "
                "checked against PostgreSQL",
            }
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
