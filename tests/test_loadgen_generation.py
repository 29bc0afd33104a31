"""Generation figures from meme rows: accepted-to-rendered percentiles and memes per minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.ids import new_id
from loadgen.generation import figures
from loadgen.ledger import MemeRow

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _row(accepted_s: float, took_s: float | None, status: str = "rendered") -> MemeRow:
    created = START + timedelta(seconds=accepted_s)
    done = created + timedelta(seconds=took_s) if took_s is not None else None
    return MemeRow(new_id(), status, created, done, 1)


def test_latency_is_accepted_to_rendered_and_throughput_counts_the_window() -> None:
    # 100 memes accepted over the first 100 s, rendered 0.5 s later, but every tenth 3 s later;
    # one failed and one pending are neither latency nor throughput.
    rows = [_row(i, 3.0 if i % 10 == 0 else 0.5) for i in range(100)]
    rows += [_row(5, 0.1, "failed"), _row(6, None, "pending")]
    out = figures(rows, START, duration_s=120)
    assert out["rendered"] == 100
    assert out["p95_s"] == 3.0  # 10 % took 3 s: the p95 is one of them
    assert out["latency_s"]["p50"] == 0.5
    assert out["rendered_in_window"] == 100
    assert out["memes_per_min"] == 50.0  # 100 in 2 minutes
    assert out["peak_memes_per_min"] == 60  # the first minute rendered 60
    assert sum(n for _, n in out["per_second"]) == 100


def test_memes_rendered_after_the_run_are_latency_but_not_throughput() -> None:
    rows = [_row(50, 20.0), _row(10, 1.0)]
    out = figures(rows, START, duration_s=60)
    assert out["rendered_in_window"] == 1
    assert out["memes_per_min"] == 1.0
    assert out["p95_s"] == 20.0


def test_no_rendered_meme_means_no_latency() -> None:
    out = figures([_row(1, None, "pending")], START, duration_s=60)
    assert out["p95_s"] is None and out["latency_s"] is None and out["memes_per_min"] == 0.0


def test_a_backlog_longer_than_ten_minutes_is_measured_not_capped() -> None:
    rows = [_row(i, 1200.0 + i) for i in range(20)]
    out = figures(rows, START, duration_s=60)
    assert out["p95_s"] == 1218.0 and out["latency_s"]["max"] == 1219.0  # nearest rank: 19th
    assert out["latency_s"]["p50"] == 1209.0 and out["latency_s"]["count"] == 20
