"""The load generator against the real platform: REST and Kafka targets, lag and KEDA sampling."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import psycopg
import pytest

from domain.settings import Settings
from loadgen.accounts import provision, revoke
from loadgen.kafka_target import KafkaTarget
from loadgen.keda import KafkaTrigger, ScaledObject
from loadgen.lag import LagReader
from loadgen.record import build
from loadgen.replay import Observer, replay
from loadgen.report import build as build_report
from loadgen.report import write_html, write_json
from loadgen.rest_target import RestTarget
from loadgen.trace import TraceRecord
from producers.roles import RENDER

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("render_worker")]


def wait_all_rendered(settings: Settings, ids: list[str], timeout: float = 60.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        with psycopg.connect(settings.database_url) as conn:
            rows = conn.execute(
                "SELECT status, count(*) FROM memes WHERE id = ANY(%s::uuid[]) GROUP BY status",
                (ids,),
            ).fetchall()
        counts = {status: n for status, n in rows}
        if counts.get("rendered", 0) + counts.get("failed", 0) == len(ids):
            return counts
        time.sleep(0.5)
    return counts


def _observer(settings: Settings, group: str) -> Observer:
    trigger = KafkaTrigger(
        "lag", group, "meme.requests", lag_threshold=5, limit_to_partitions_with_lag=True
    )
    return Observer(
        lag_reader=LagReader(settings.kafka_bootstrap_servers),
        lag_pairs=[(group, "meme.requests")],
        scaled_objects=[ScaledObject("memestream-render", 1, 6, (trigger,))],
        interval_s=0.5,
    )


async def test_rest_replay_of_a_mixed_trace(
    api_url: str, stack_settings: Settings, tmp_path: Path
) -> None:
    header, records = build("sustained", 11, scale=0.02)  # 10 users, 36 s
    accounts = await provision(stack_settings, {r.user for r in records})
    try:
        result = await replay(
            records,
            RestTarget(api_url, credentials=accounts.keys),
            speed=4.0,
            header=header,
            observer=_observer(stack_settings, "memestream-render"),
        )
    finally:
        await revoke(stack_settings, accounts)
    stats = result.stats
    generate = stats.actions["generate"]
    assert generate.sent > 5 and generate.ok == generate.sent, generate.as_dict()
    assert stats.errors == 0, {a: s.error_samples for a, s in stats.actions.items()}
    # Every trace user authenticated with its own key: votes reach the API, none is a 401
    # (a vote on a meme still rendering is a 409 at this speed).
    assert all("401" not in a.statuses for a in stats.actions.values()), stats.actions
    assert stats.actions["vote"].sent > 0
    # Reads of memes this run created reach the API; actions without a route yet are counted.
    assert stats.actions["get_meme"].ok > 0
    for name, action in stats.actions.items():
        assert set(action.skipped) <= {"no endpoint", "referenced meme not created"}, name
    assert stats.sent + stats.skipped == len(records)
    counts = wait_all_rendered(stack_settings, stats.created)
    assert counts.get("rendered", 0) == len(stats.created), counts

    report = build_report(result, _observer(stack_settings, "x").scaled_objects)
    write_json(report, tmp_path / "report.json")
    write_html(report, tmp_path / "report.html")
    assert report["run"]["created_memes"] == len(stats.created)
    assert report["lag"]["samples"], "consumer lag was sampled from the admin API"
    # Validity (lateness p99 <= 10 ms) is the ceiling benchmark's business, not a shared box's.
    assert report["summary"]["requests"] == stats.sent == report["lateness_s"]["count"]
    print(report["summary_line"])


async def test_kafka_replay_feeds_the_render_worker(stack_settings: Settings) -> None:
    records = [
        TraceRecord(
            at=i * 0.02,
            user=f"u{i}",
            action="generate",
            payload={"template_id": "drake", "texts": ["LOAD", f"TEST {i}"]},
            seq=i,
        )
        for i in range(30)
    ]
    # Late enough for the first request's acknowledgement on a busy CI machine: an action on a
    # meme whose creation is not acknowledged yet is skipped, as the replay defines.
    records.append(TraceRecord(at=2.0, user="u1", action="vote", payload={"ref": 0, "value": 1}))
    records.append(TraceRecord(at=2.0, user="u1", action="get_meme", payload={"ref": 0}))
    group = RENDER.group_id_for("loadgen-observed")  # lag of any group can be read
    result = await replay(
        records, KafkaTarget(stack_settings), observer=_observer(stack_settings, group)
    )
    stats = result.stats
    assert stats.actions["generate"].ok == 30 and stats.errors == 0
    assert stats.actions["vote"].ok == 1
    assert stats.actions["get_meme"].skipped == {"no Kafka equivalent": 1}
    counts = wait_all_rendered(stack_settings, stats.created)
    assert counts.get("rendered") == 30, counts
    assert result.samples.lag and all(
        s["keda"]["memestream-render"] is not None for s in result.samples.lag
    )


def test_run_measures_every_summary_figure_around_the_replay(
    api_url: str, stack_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`loadgen run --target`: trace, replay, ledger, cache counters, feed probe, host load."""
    from typer.testing import CliRunner

    from loadgen.cli import app

    monkeypatch.chdir(tmp_path)  # the trace goes to ./artifacts/load
    args = ["run", "--scenario", "sustained", "--scale", "0.01", "--target", api_url]
    args += ["--out", str(tmp_path / "reports"), "--drain-wait", "90"]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    report = orjson.loads((tmp_path / "reports" / "sustained.json").read_bytes())
    summary, ledger = report["summary"], report["ledger"]
    assert ledger["accepted_memes"] == report["run"]["created_memes"] > 0
    assert summary["lost"] == ledger["lost"] and summary["duplicated_effects"] == 0
    assert ledger["lost_memes_no_row"] == 0, "the API wrote every accepted meme's row"
    assert report["generation"]["rendered"] == ledger["statuses"].get("rendered", 0)
    assert report["cache"] is not None and report["cache"]["hits"] + report["cache"]["misses"] > 0
    assert report["feed_delivery"]["connects"] >= 1
    assert summary["cores"] == os.cpu_count() and summary["load_avg_1m_mean"] is not None
    assert "host: " in outcome.output and (tmp_path / "reports" / "sustained.html").is_file()
