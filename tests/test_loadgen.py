"""The load generator's pure parts: traces, scenarios, HDR histograms, KEDA's formula, report."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from loadgen.histograms import LatencyHistogram, Timeline
from loadgen.keda import KafkaTrigger, ScaledObject, load_scaled_objects, parse
from loadgen.lag import GroupLag, PartitionLag
from loadgen.record import build, record
from loadgen.replay import replay
from loadgen.report import build as build_report
from loadgen.report import write_html, write_json
from loadgen.rest_target import RestTarget, Route, routes_from_openapi
from loadgen.scenarios import NEEDS_MEME, SCENARIOS, get_scenario
from loadgen.stats import Outcome
from loadgen.trace import TraceRecord, read_header, read_trace
from tests.loadgen_support import fake_api


def test_same_seed_same_trace_and_other_seed_differs(tmp_path: Path) -> None:
    a = record("burst", 7, tmp_path / "a.jsonl", scale=0.05)
    b = record("burst", 7, tmp_path / "b.jsonl", scale=0.05)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert a == b
    record("burst", 8, tmp_path / "c.jsonl", scale=0.05)
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()


def test_trace_round_trips_with_header(tmp_path: Path) -> None:
    header, records = build("sustained", 3, scale=0.01)
    record("sustained", 3, tmp_path / "t.jsonl", scale=0.01)
    assert read_header(tmp_path / "t.jsonl") == header
    assert list(read_trace(tmp_path / "t.jsonl")) == records
    assert header.records == len(records) > 0
    times = [r.at for r in records]
    assert times == sorted(times) and times[-1] < header.duration_s


def test_burst_follows_its_user_profile() -> None:
    """Arrivals ramp up for 30 s, hold 5 min at ~1,000 users x 0.2/s, then decline."""
    _, records = build("burst", 1, scale=1.0)
    per_second = [0] * 930
    for r in records:
        per_second[int(r.at)] += 1
    ramp = sum(per_second[0:30]) / 30
    hold = sum(per_second[30:330]) / 300
    tail = sum(per_second[830:930]) / 100
    assert 190 < hold < 210  # 1,000 users x 0.2 actions/s
    assert 80 < ramp < 120  # linear ramp: half the peak on average
    assert tail < 25
    users = {r.user for r in records}
    assert len(users) == 1000


def test_scale_shrinks_time_and_users() -> None:
    full = get_scenario("burst")
    small = full.scaled(0.01)
    assert small.duration_s == pytest.approx(full.duration_s * 0.01)
    assert small.peak_users == 10
    header, records = build("burst", 1, scale=0.01)
    assert header.duration_s == pytest.approx(9.3)
    assert len({r.user for r in records}) <= 10


def test_reads_refer_only_to_earlier_generates_and_skew_to_hot_memes() -> None:
    _, records = build("sustained", 5, scale=0.1)
    generated = set()
    hits: dict[int, int] = {}
    for r in records:
        if r.action == "generate":
            generated.add(r.seq)
        if r.action in NEEDS_MEME:
            assert r.payload["ref"] in generated
            hits[r.payload["ref"]] = hits.get(r.payload["ref"], 0) + 1
    counts = sorted(hits.values(), reverse=True)
    top = sum(counts[: max(1, len(generated) // 10)])
    assert top / sum(counts) > 0.5, "the top 10 % of memes should take most reads"


def test_memory_scenario_uploads_more_than_10_mb() -> None:
    scenario = SCENARIOS["memory"]
    _, records = build("memory", 2, scale=0.1)
    uploads = [r for r in records if r.action == "upload"]
    assert uploads
    p = uploads[0].payload
    assert p["width"] * p["height"] * 3 >= 10_000_000 == scenario.upload_bytes - 500_000
    batches = [r for r in records if r.action == "batch"]
    assert batches and all(len(b.payload["items"]) == 50 for b in batches)


def test_noise_png_upload_is_over_10_mb() -> None:
    from loadgen.images import noise_png

    _, records = build("memory", 2, scale=0.1)
    p = next(r for r in records if r.action == "upload").payload
    data = noise_png(p["seed"], p["width"], p["height"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000_000


def test_hdr_percentiles_and_encoding() -> None:
    hist = LatencyHistogram()
    for ms in range(1, 1001):
        hist.record(ms / 1000)
    assert hist.count == 1000
    assert hist.percentile(50) == pytest.approx(0.5, rel=0.01)
    assert hist.percentile(99) == pytest.approx(0.99, rel=0.01)
    assert LatencyHistogram.decode(hist.encode()).percentile(95) == hist.percentile(95)
    other = LatencyHistogram()
    other.record(10.0)
    hist.merge(other)
    assert hist.max() == pytest.approx(10.0, rel=0.01)


def test_timeline_fills_gaps() -> None:
    timeline = Timeline()
    timeline.record(0.2, 0.01, ok=True)
    timeline.record(2.5, 0.03, ok=False)
    rows = timeline.rows()
    assert [r["t"] for r in rows] == [0, 1, 2]
    assert rows[1]["requests"] == 0 and rows[2]["errors"] == 1
    timeline.late(2.7, 0.004)
    timeline.late(2.1, 0.002)
    assert [r["lateness_max"] for r in timeline.rows()] == [0.0, 0.0, 0.004]


def _lag(*pairs: tuple[int, int]) -> GroupLag:
    return GroupLag(
        "memestream-render",
        "meme.requests",
        tuple(PartitionLag(i, c, latest) for i, (c, latest) in enumerate(pairs)),
    )


def test_keda_formula_caps_by_partitions_with_lag() -> None:
    trigger = KafkaTrigger(
        "t", "memestream-render", "meme.requests", lag_threshold=50,
        limit_to_partitions_with_lag=True, offset_reset_policy="earliest",
    )  # fmt: skip
    so = ScaledObject("render", min_replicas=1, max_replicas=6, kafka_triggers=(trigger,))
    lags = {("memestream-render", "meme.requests"): _lag((0, 1000), (10, 10), (5, 5))}
    # 1,000 lag / 50 = 20 wanted, but only one partition has lag.
    assert trigger.metric(lags[("memestream-render", "meme.requests")]) == 50
    assert so.desired(lags) == 1
    lags = {("memestream-render", "meme.requests"): _lag((0, 120), (0, 40), (0, 0))}
    assert so.desired(lags) == 2  # ceil(160 / 50) = 4, capped at 2 partitions with lag
    lags = {("memestream-render", "meme.requests"): _lag((0, 10), (0, 10), (0, 10))}
    assert so.desired(lags) == 1  # ceil(30 / 50)
    # Without limitToPartitionsWithLag the cap is all partitions, then maxReplicaCount.
    wide = KafkaTrigger("t", "memestream-render", "meme.requests", lag_threshold=10)
    so = ScaledObject("render", 0, 6, (wide,))
    lags = {("memestream-render", "meme.requests"): _lag(*[(0, 1000)] * 12)}
    assert wide.desired(lags[("memestream-render", "meme.requests")]) == 12
    assert so.desired(lags) == 6
    assert so.desired({}) is None


def test_keda_invalid_offsets_and_activation() -> None:
    lag = _lag((-1001, 70), (-1001, 30))
    assert KafkaTrigger("t", "g", "t", offset_reset_policy="earliest").total_lag(lag) == 100
    assert KafkaTrigger("t", "g", "t", offset_reset_policy="latest").total_lag(lag) == 2
    zero = KafkaTrigger("t", "g", "t", scale_to_zero_on_invalid_offset=True)
    assert zero.total_lag(lag) == 0
    idle = KafkaTrigger("t", "memestream-render", "meme.requests", activation_lag_threshold=5)
    so = ScaledObject("render", 0, 6, (idle,))
    assert so.desired({("memestream-render", "meme.requests"): _lag((10, 13))}) == 0
    assert so.desired({("memestream-render", "meme.requests"): _lag((10, 16))}) == 1


def test_scaled_objects_are_read_from_deploy_and_defensively() -> None:
    objects = load_scaled_objects()
    if objects:  # the ops engineer's manifests
        assert any(t.topic == "meme.requests" for so in objects for t in so.kafka_triggers)
    partial = parse(
        {
            "kind": "ScaledObject",
            "metadata": {"name": "x"},
            "spec": {"triggers": [{"type": "kafka", "metadata": {"topic": "a"}}]},
        }
    )
    assert partial is not None and partial.kafka_triggers == ()
    assert partial.min_replicas == 0 and partial.max_replicas == 100
    assert parse({"kind": "Deployment"}) is None
    assert load_scaled_objects(Path("/nonexistent")) == []


def test_routes_come_from_openapi_and_missing_ones_are_absent() -> None:
    spec = {
        "paths": {
            "/api/meme/generate": {"post": {}},
            "/api/meme/{meme_id}": {"get": {}},
            "/api/meme/{id}/vote": {"post": {}},
            "/api/memes/batch": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/B"}}
                        }
                    }
                }
            },
        },
        "components": {"schemas": {"B": {"properties": {"requests": {"type": "array"}}}}},
    }
    routes = routes_from_openapi(spec)
    assert routes["vote"].path == "/api/meme/{}/vote"
    assert routes["batch"].body_key == "requests"
    assert "trending" not in routes and "upload" not in routes


def test_view_reads_the_meme_when_there_is_no_view_route() -> None:
    """GET /api/meme/{id} counts a view; a dedicated view route would be preferred."""
    spec = {"paths": {"/api/meme/{meme_id}": {"get": {}}}}
    assert routes_from_openapi(spec)["view"] == Route("GET", "/api/meme/{}")
    spec["paths"]["/api/meme/{meme_id}/view"] = {"post": {}}
    assert routes_from_openapi(spec)["view"] == Route("POST", "/api/meme/{}/view")


async def test_a_view_is_sent_as_a_get_of_the_meme() -> None:
    async with fake_api() as api:
        api.created.add("m1")
        target = RestTarget(api.url)
        target.routes = {"view": Route("GET", "/api/meme/{}")}
        await target.setup()
        try:
            outcome = await target.execute(TraceRecord(at=0, user="u", action="view", seq=1), "m1")
        finally:
            await target.close()
    assert outcome.kind == "ok" and api.seen == [("GET", "/api/meme/m1", "")]


async def test_requests_carry_their_trace_users_api_key() -> None:
    """Per-user credentials: a user with a key sends it, any other user goes anonymously."""
    async with fake_api() as api:
        target = RestTarget(api.url, credentials={"u1": "msk_one"})
        await target.setup()
        try:
            gen = TraceRecord(at=0, user="u1", action="generate", payload={"t": 1}, seq=0)
            made = await target.execute(gen, None)
            anon = TraceRecord(at=0, user="u2", action="vote", payload={"value": 1}, seq=1)
            refused = await target.execute(anon, made.created[0])
        finally:
            await target.close()
    assert made.kind == "ok" and made.status == 202 and made.created[0] in api.created
    assert refused.status == 401 and refused.kind == "rejected"
    assert [auth for _, _, auth in api.seen] == ["Bearer msk_one", ""]


async def test_a_wait_for_a_free_connection_counts_as_lateness() -> None:
    """One connection, a 0.3 s server, three requests at once: the 2nd and 3rd waited for
    the connection, so the generator was late by ~0.3 and ~0.6 s, and the report says so."""
    records = [TraceRecord(at=0.0, user="u", action="generate", seq=i) for i in range(3)]
    async with fake_api(delay_s=0.3) as api:
        result = await replay(records, RestTarget(api.url, connections=1))
    stats = result.stats
    assert stats.actions["generate"].ok == 3 and stats.queued == 2
    assert stats.lateness.percentile(100) == pytest.approx(0.6, abs=0.15)
    assert stats.lateness.percentile(0) < 0.05
    summary = build_report(result, [])["summary"]
    assert summary["valid"] is False
    assert summary["generator_lateness_p99_ms"] > 400
    assert "generator lateness p99" in summary["invalid_reasons"][0]


async def test_refused_connections_are_server_errors() -> None:
    target = RestTarget(f"http://127.0.0.1:{_closed_port()}", timeout_s=2)
    target.routes = {"trending": Route("GET", "/api/trending")}
    await target.setup()
    try:
        outcome = await target.execute(TraceRecord(at=0, user="u", action="trending"), None)
    finally:
        await target.close()
    assert outcome.kind == "error" and "Connect" in (outcome.error or "")


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SlowTarget:
    """Answers every request after a fixed delay: a server that stalls."""

    name = "slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sent_at: list[float] = []

    async def setup(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def execute(self, record: TraceRecord, meme_id: str | None) -> Outcome:
        self.sent_at.append(asyncio.get_running_loop().time())
        await asyncio.sleep(self.delay)
        created = (f"m{record.seq}",) if record.action == "generate" else ()
        return Outcome(status=202 if created else 200, created=created)


async def test_replay_is_open_loop_and_counts_stalls_as_latency() -> None:
    """20 requests 50 ms apart against a 1 s server: all leave on schedule within ~1 s."""
    records = [TraceRecord(at=i * 0.05, user="u", action="generate", seq=i) for i in range(20)]
    records.append(TraceRecord(at=1.3, user="u", action="get_meme", payload={"ref": 3}, seq=20))
    records.append(TraceRecord(at=1.3, user="u", action="get_meme", payload={"ref": 99}, seq=21))
    target = SlowTarget(delay=1.0)
    result = await replay(records, target, speed=1.0)
    spread = target.sent_at[19] - target.sent_at[0]
    assert spread == pytest.approx(0.95, abs=0.15), "a closed loop would take 19 s"
    assert result.stats.actions["generate"].latency.percentile(50) == pytest.approx(1.0, abs=0.1)
    assert result.stats.actions["get_meme"].sent == 1  # ref 3 was created by then
    assert result.stats.actions["get_meme"].skipped == {"referenced meme not created": 1}
    assert len(result.stats.created) == 20
    assert result.duration_s < 3


async def test_requests_unanswered_at_the_drain_cutoff_are_errors() -> None:
    """A server that never answers: its requests count as errors at the cutoff's latency,
    rather than vanishing from the figures."""
    records = [TraceRecord(at=i * 0.1, user="u", action="trending", seq=i) for i in range(3)]
    result = await replay(records, SlowTarget(delay=30.0), drain_timeout_s=0.5)
    trending = result.stats.actions["trending"]
    assert result.undrained == 3 and result.duration_s < 5
    assert (trending.sent, trending.errors, result.stats.in_flight) == (3, 3, 0)
    assert sum(trending.error_samples.values()) == 3
    assert next(iter(trending.error_samples)).startswith("unanswered after the 0.5 s drain")
    # Sent at 0, 0.1 and 0.2 s, cut off ~0.5 s after the last: 0.7, 0.6 and 0.5 s.
    assert trending.latency.percentile(100) == pytest.approx(0.7, abs=0.1)
    assert trending.latency.percentile(0) == pytest.approx(0.5, abs=0.1)


async def test_replay_speed_compresses_the_schedule() -> None:
    records = [TraceRecord(at=i * 0.2, user="u", action="trending", seq=i) for i in range(10)]
    target = SlowTarget(delay=0.0)
    await replay(records, target, speed=4.0)
    assert target.sent_at[-1] - target.sent_at[0] == pytest.approx(1.8 / 4, abs=0.1)


async def test_report_json_html_and_summary(tmp_path: Path) -> None:
    header, records = build("burst", 1, scale=0.01)
    result = await replay(records, SlowTarget(delay=0.01), speed=20.0, header=header)
    lag = GroupLag("memestream-render", "meme.requests", (PartitionLag(0, 0, 500),))
    trigger = KafkaTrigger("lag", "memestream-render", "meme.requests", lag_threshold=50)
    so = ScaledObject("memestream-render", 1, 6, (trigger,))
    result.samples.lag.append(
        {
            "t": 0.5,
            "lags": {"memestream-render/meme.requests": {"total": 500, "partitions": [500]}},
            "keda": {
                "memestream-render": so.desired({("memestream-render", "meme.requests"): lag})
            },
        }
    )
    result.samples.rss.extend({"t": float(t), "mb": {"api": 100.0 + t}} for t in range(6))
    report = build_report(result, [so])
    assert report["run"]["sent"] == len(records)
    assert report["keda"]["peak_replicas"] == {"memestream-render": 1}
    assert report["lag"]["peak"] == {"memestream-render/meme.requests": 500}
    line = report["summary_line"]
    assert line.startswith("burst x0.01 -> slow at 20x") and "p95" in line and "\n" not in line
    summary = report["summary"]
    assert summary["scale"] == 0.01 and summary["requests"] == len(records)
    assert summary["server_errors"] == 0
    # Valid exactly when the generator kept its schedule (timing depends on the machine).
    on_time = summary["generator_lateness_p99_ms"] <= 10
    assert summary["valid"] is on_time and (summary["invalid_reasons"] == []) is on_time
    assert 10 <= summary["api_read_p95_ms"] < 200  # the 10 ms server, on a busy machine
    assert 10 <= summary["generate_accept_p95_ms"] < 200
    assert summary["max_lag"] == {"memestream-render/meme.requests": 500}
    assert summary["rss_growth_pct"] == pytest.approx(5.0)  # 100 -> 105 MiB
    not_measured = ("lost", "generation_p95_s", "memes_per_min", "cache_hit_ratio")
    assert all(summary[k] is None for k in (*not_measured, "feed_delivery_p99_ms"))
    write_json(report, tmp_path / "r.json")
    write_html(report, tmp_path / "r.html")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["summary_line"] == line and saved["summary"] == summary
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 6  # with the generator's lateness
    assert "memestream-render" in page


async def test_live_progress_shows_rate_p95_errors_and_lag() -> None:
    from rich.console import Console

    from loadgen.progress import LiveProgress

    records = [TraceRecord(at=i * 0.01, user="u", action="trending", seq=i) for i in range(30)]
    result = await replay(records, SlowTarget(delay=0.02))
    result.samples.lag.append(
        {"t": 0.1, "lags": {"g/meme.requests": {"total": 42, "partitions": [42]}}, "keda": {"r": 2}}
    )
    console = Console(record=True, width=120)
    progress = LiveProgress(len(records), 0.3, console)
    console.print(progress.render(1.0, result.stats, result.samples))
    text = console.export_text()
    assert "30/30" in text and "p95" in text and "g/meme.requests" in text and "42" in text
    assert "KEDA r" in text and "2 replicas" in text
