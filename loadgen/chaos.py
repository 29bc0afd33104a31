"""Chaos while requests arrive: a mixed trace replayed open-loop while one fault at a time hits
the platform, and what each fault cost (issue 16, item 5).

Faults, in this order, each during a replay of its own (fresh memes, votes and ledger, so one
fault's backlog is not blamed on the next):

- `render_worker_sigkill`: SIGKILL the render worker; a supervisor starts another at once;
- `kafka_restart`: stop the broker and start it again;
- `redis_stop_30s`: stop Redis for `outage_s` (30 s at full size);
- `postgres_stop_30s`: stop PostgreSQL for `outage_s`.

Per fault: `lost` and `duplicated_effects` from the ledger (loadgen/ledger.py: every accepted
generation must reach a final status, every accepted vote must be in PostgreSQL),
`outbox_pending` (events staged with a PostgreSQL write and not yet in Kafka), the answers
by status (`errors_by_status`: 5xx and transport errors; `statuses`: every answer), and how
long recovery took: `recovery_s` runs from the moment the fault was lifted (the store back,
the replacement worker started) to the end of the last second with an error, and
`accept_to_render_max_s` is the longest any meme accepted during the replay waited for its
render (the render backlog a fault leaves). The platform side (which process, which store) is
a `Platform`, so the runner works on any stack that can be broken on purpose; the
benchmark's is a private one (benchmarks/load_chaos.py), never the shared stack.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import psycopg
from confluent_kafka import KafkaException
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_fixed

from domain.settings import Settings
from loadgen.ledger import Ledger, LedgerCheck, check_sync
from loadgen.replay import ReplayResult, replay
from loadgen.rest_target import RestTarget
from loadgen.scenarios import MIXED, Phase, Scenario, generate
from loadgen.trace import TraceRecord

FAULTS: tuple[str, ...] = (
    "render_worker_sigkill",
    "kafka_restart",
    "redis_stop_30s",
    "postgres_stop_30s",
)


class Platform(Protocol):
    """A stack the runner may break: its settings (for the ledger) and the API's URL."""

    settings: Settings
    api_url: str

    def inject(self, fault: str) -> None:
        """Starts the fault (kill the worker, stop the store)."""

    def lift(self, fault: str) -> None:
        """Ends it (a replacement worker, the store started again); returns once it is up."""

    def supervise(self) -> list[str]:
        """Restarts what died on its own (as Kubernetes would); names what it restarted."""


@dataclass(frozen=True, slots=True)
class ChaosPlan:
    """Sizes: `segment_s` of trace per fault, the fault `at_s` into it, stores down `outage_s`."""

    segment_s: float = 90.0
    at_s: float = 15.0
    outage_s: float = 30.0
    users: int = 60
    rate_per_user: float = 0.2
    seed: int = 16
    drain_wait_s: float = 180.0
    settle_s: float = 60.0
    timeout_s: float = 30.0

    def scenario(self) -> Scenario:
        return Scenario(
            "chaos",
            f"mixed reads and writes, {self.users} users, one fault per segment",
            (Phase(self.segment_s, self.users, self.users),),
            rate_per_user=self.rate_per_user,
            mix=MIXED,
            feed_hold_s=2.0,
        )

    def records(self, index: int) -> list[TraceRecord]:
        return list(generate(self.scenario(), self.seed + index))


@dataclass(slots=True)
class FaultWindow:
    injected_at: float | None = None  # seconds since the replay's start
    lifted_at: float | None = None
    restarted: list[str] = field(default_factory=list)
    error: str | None = None


def errors_by_status(result: ReplayResult) -> tuple[dict[str, int], dict[str, int]]:
    """(5xx and transport errors by status, every answer by status) over all actions."""
    statuses: Counter[str] = Counter()
    for action in result.stats.actions.values():
        statuses.update(action.statuses)
    errors = {s: n for s, n in statuses.items() if not s.isdigit() or int(s) >= 500}
    return errors, dict(sorted(statuses.items()))


def recovery_s(result: ReplayResult, window: FaultWindow) -> float | None:
    """From the fault's lifting to the end of the last second with an error; None if the
    fault was never lifted."""
    if window.lifted_at is None:
        return None
    errors = [s for s, n in result.stats.timeline.errors.items() if n > 0]
    if not errors:
        return 0.0
    return round(max(0.0, max(errors) + 1 - window.lifted_at), 1)


def outbox_pending(settings: Settings, wait_s: float = 30.0) -> int | None:
    """Outbox rows not yet published to Kafka (api/outbox.py), once they stop shrinking or
    after `wait_s`; None when PostgreSQL does not answer."""
    deadline = time.monotonic() + wait_s
    try:
        with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=5) as conn:
            while True:
                row = conn.execute("SELECT count(*) FROM outbox").fetchone()
                left = int(row[0]) if row else 0
                if left == 0 or time.monotonic() > deadline:
                    return left
                time.sleep(1.0)
    except psycopg.Error:
        return None


def accept_to_render_max_s(check: LedgerCheck) -> float | None:
    waits = [
        (row.rendered_at - row.created_at).total_seconds()
        for row in check.memes
        if row.rendered_at is not None
    ]
    return round(max(waits), 2) if waits else None


async def _fault(
    platform: Platform, fault: str, plan: ChaosPlan, start: float, window: FaultWindow
) -> None:
    """Injects at `at_s`, lifts after `outage_s` (at once for a kill or a restart)."""
    await asyncio.sleep(max(0.0, start + plan.at_s - time.monotonic()))
    try:
        window.injected_at = time.monotonic() - start
        await asyncio.to_thread(platform.inject, fault)
        if fault.endswith("_30s"):
            await asyncio.sleep(plan.outage_s)
        await asyncio.to_thread(platform.lift, fault)
        window.lifted_at = time.monotonic() - start
    except Exception as exc:  # the report says so; the replay goes on
        window.error = f"{type(exc).__name__}: {exc}"


async def _supervise(platform: Platform, window: FaultWindow, every_s: float = 5.0) -> None:
    """The supervisor during the replay, idle while the fault is on (the fault's own lift
    replaces what it killed)."""
    while True:
        await asyncio.sleep(every_s)
        if window.injected_at is not None and window.lifted_at is None:
            continue
        window.restarted += await asyncio.to_thread(platform.supervise)


async def run_fault(
    platform: Platform,
    fault: str,
    plan: ChaosPlan,
    records: list[TraceRecord],
    credentials: dict[str, str],
) -> dict[str, Any]:
    """One replay with one fault in it, then the ledger's verdict on what was accepted."""
    target = RestTarget(platform.api_url, timeout_s=plan.timeout_s, credentials=credentials)
    window = FaultWindow()
    start = time.monotonic() + 1.0  # the target's setup happens before the first record
    fault_task = asyncio.create_task(_fault(platform, fault, plan, start, window))
    supervisor = asyncio.create_task(_supervise(platform, window))
    try:
        result = await replay(records, target, start_at=start, drain_timeout_s=plan.timeout_s)
    finally:
        await fault_task
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
    window.restarted += await asyncio.to_thread(platform.supervise)
    ledger = Ledger(
        started_at=datetime.fromisoformat(result.started_at),
        memes=list(result.stats.created),
        votes=list(result.stats.votes),
    )
    check = await asyncio.to_thread(_check, platform.settings, ledger, plan)
    window.restarted += await asyncio.to_thread(platform.supervise)
    unpublished = await asyncio.to_thread(outbox_pending, platform.settings)
    errors, statuses = errors_by_status(result)
    return {
        "lost": check.lost,
        "duplicated_effects": check.duplicated_effects,
        "errors_by_status": errors,
        "statuses": statuses,
        "recovery_s": recovery_s(result, window),
        # Per function (action): the longest run of seconds in which it answered errors.
        "unavailable_s": {n: a.unavailable_s() for n, a in sorted(result.stats.actions.items())},
        "accept_to_render_max_s": accept_to_render_max_s(check),
        "outbox_pending": unpublished,
        "injected_at_s": _round(window.injected_at),
        "lifted_at_s": _round(window.lifted_at),
        "fault_error": window.error,
        "restarted_by_supervisor": window.restarted,
        "requests": result.stats.sent,
        "ledger": check.as_dict(),
        "timeline": [
            {"t": r["t"], "requests": r["requests"], "errors": r["errors"], "p95": r["p95"]}
            for r in result.stats.timeline.rows()
        ],
    }


@retry(
    retry=retry_if_exception_type(KafkaException),
    stop=stop_after_attempt(5),
    wait=wait_fixed(3.0),
    reraise=True,
)
def _check(settings: Settings, ledger: Ledger, plan: ChaosPlan) -> LedgerCheck:
    """The ledger's verdict; a broker just restarted answers offset lookups with transient
    errors (UNKNOWN_LEADER_EPOCH) for a few seconds, so those are retried."""
    return check_sync(settings, ledger, wait_s=plan.drain_wait_s, settle_s=plan.settle_s)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def run(
    platform: Platform,
    plan: ChaosPlan,
    credentials: dict[str, str],
    faults: tuple[str, ...] = FAULTS,
    on_fault: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every fault in turn; returns the report (`summary.faults.<name>` per fault)."""
    results: dict[str, dict[str, Any]] = {}
    for index, fault in enumerate(faults):
        results[fault] = await run_fault(platform, fault, plan, plan.records(index), credentials)
        if on_fault is not None:
            on_fault(fault, results[fault])
    summary_faults = {
        name: {k: v for k, v in r.items() if k not in ("timeline", "ledger", "statuses")}
        for name, r in results.items()
    }
    return {
        "plan": {
            "segment_s": plan.segment_s,
            "at_s": plan.at_s,
            "outage_s": plan.outage_s,
            "users": plan.users,
            "rate_per_user": plan.rate_per_user,
            "seed": plan.seed,
        },
        "summary": {
            "lost": sum(r["lost"] for r in results.values()),
            "duplicated_effects": sum(r["duplicated_effects"] for r in results.values()),
            "faults": summary_faults,
        },
        "faults": results,
    }


def users_of(plan: ChaosPlan, faults: tuple[str, ...] = FAULTS) -> set[str]:
    """The trace users of every segment (who need an API key)."""
    return {r.user for i in range(len(faults)) for r in plan.records(i)}
