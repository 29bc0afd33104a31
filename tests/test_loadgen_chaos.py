"""The chaos runner's arithmetic (loadgen/chaos.py): what counts as an error, when recovery
ends, the render backlog, and a deterministic mixed trace per fault. The runner itself runs
against a private stack in tests/chaos/test_load_chaos.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loadgen.chaos import (
    FAULTS,
    ChaosPlan,
    FaultWindow,
    accept_to_render_max_s,
    errors_by_status,
    recovery_s,
    users_of,
)
from loadgen.ledger import LedgerCheck, MemeRow
from loadgen.replay import ReplayResult, Samples
from loadgen.stats import Outcome, Stats


def result_of(outcomes: list[tuple[float, str, Outcome]]) -> ReplayResult:
    stats = Stats()
    for at, action, outcome in outcomes:
        stats.record(action, at, 0.01, outcome)
    return ReplayResult(stats, Samples(), "rest", 1.0, "2026-12-07T00:00:00+00:00", 30.0, 0, 0)


def test_errors_are_5xx_and_transport_failures_only() -> None:
    result = result_of(
        [
            (1.0, "generate", Outcome(status=202)),
            (2.0, "vote", Outcome(status=409)),
            (3.0, "generate", Outcome(status=503)),
            (3.5, "get_meme", Outcome(status=503)),
            (4.0, "get_meme", Outcome(error="ServerDisconnectedError")),
        ]
    )
    errors, statuses = errors_by_status(result)
    assert errors == {"503": 2, "error": 1}
    assert statuses == {"202": 1, "409": 1, "503": 2, "error": 1}


def test_recovery_runs_from_the_lift_to_the_end_of_the_last_error_second() -> None:
    result = result_of(
        [
            (5.2, "generate", Outcome(status=503)),
            (12.7, "generate", Outcome(status=503)),
            (14.0, "generate", Outcome(status=202)),
        ]
    )
    assert recovery_s(result, FaultWindow(injected_at=5.0, lifted_at=10.0)) == 3.0
    assert recovery_s(result, FaultWindow(injected_at=5.0, lifted_at=20.0)) == 0.0
    assert recovery_s(result, FaultWindow(injected_at=5.0)) is None  # never lifted
    clean = result_of([(6.0, "generate", Outcome(status=202))])
    assert recovery_s(clean, FaultWindow(injected_at=5.0, lifted_at=6.0)) == 0.0


def test_render_backlog_is_the_longest_accept_to_render_wait() -> None:
    t0 = datetime(2026, 12, 7, tzinfo=UTC)
    rows = [
        MemeRow("a", "rendered", t0, t0 + timedelta(seconds=0.5), 1),
        MemeRow("b", "rendered", t0, t0 + timedelta(seconds=31.25), 1),
        MemeRow("c", "pending", t0, None, 1),
    ]
    check = LedgerCheck(3, 0, ["c"], [], 0, 0, 0, 1.0, False, {}, rows)
    assert accept_to_render_max_s(check) == 31.25
    assert accept_to_render_max_s(LedgerCheck(0, 0, [], [], 0, 0, 0, 0.0, True, {})) is None


def test_each_fault_replays_its_own_deterministic_mixed_trace() -> None:
    plan = ChaosPlan(segment_s=20.0, users=25)
    first, again, second = plan.records(0), plan.records(0), plan.records(1)
    assert first == again and first != second
    actions = {r.action for r in first}
    assert {"generate", "vote", "get_meme"} <= actions  # reads and writes, votes included
    assert all(0 <= r.at < 20.0 for r in first)
    assert users_of(plan) == {r.user for i in range(len(FAULTS)) for r in plan.records(i)}
    assert FAULTS == (
        "render_worker_sigkill",
        "kafka_restart",
        "redis_stop_30s",
        "postgres_stop_30s",
    )
