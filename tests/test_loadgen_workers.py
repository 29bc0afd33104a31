"""Replay across worker processes: shares by user, cross-process meme ids, merged figures."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from loadgen.memory import RssSampler
from loadgen.replay import Observer
from loadgen.trace import TraceHeader, TraceRecord, write_trace
from loadgen.workers import RestSpec, replay_processes, share
from tests.loadgen_support import fake_api


def test_share_is_stable_and_spreads_users() -> None:
    users = [f"u{i:05d}" for i in range(1000)]
    shares = [share(u, 3) for u in users]
    assert shares == [share(u, 3) for u in users]
    assert set(Counter(shares).values()) and min(Counter(shares).values()) > 250
    assert all(share(u, 1) == 0 for u in users)


async def test_two_processes_replay_one_trace_and_resolve_each_others_memes(
    tmp_path: Path,
) -> None:
    """u-a's and u-d's records land in different workers; each reads the other's meme."""
    users = ("u-a", "u-d")
    assert share(users[0], 2) != share(users[1], 2)
    records = [
        TraceRecord(at=0.0, user=users[0], action="generate", payload={"t": 0}, seq=0),
        TraceRecord(at=0.05, user=users[1], action="generate", payload={"t": 1}, seq=1),
    ]
    seq = 2
    for i in range(40):  # 0.5 s later: each user reads both memes, 10 ms apart
        user = users[i % 2]
        records.append(
            TraceRecord(at=0.5 + i * 0.01, user=user, action="get_meme",
                        payload={"ref": i // 2 % 2}, seq=seq)
        )  # fmt: skip
        seq += 1
    records.append(  # with its key, u-d's vote is accepted; u-a has none and is refused
        TraceRecord(at=1.0, user=users[1], action="vote", payload={"ref": 0, "value": 1}, seq=seq)
    )
    records.append(
        TraceRecord(
            at=1.0, user=users[0], action="vote", payload={"ref": 1, "value": 1}, seq=seq + 1
        )
    )
    path = tmp_path / "t.jsonl"
    header = TraceHeader("test", 1, 1.0, 1.1, len(records))
    write_trace(path, header, records)
    async with fake_api() as api:
        spec = RestSpec(api.url, timeout_s=5, credentials={users[1]: "msk_d"})
        observer = Observer(rss=RssSampler({"me": os.getpid()}), interval_s=0.2)
        result = await replay_processes(path, spec, processes=2, header=header, observer=observer)
    stats = result.stats
    get = stats.actions["get_meme"]
    assert (get.sent, get.ok, get.skipped) == (40, 40, {}), get.as_dict()
    assert stats.actions["generate"].ok == 2 and sorted(stats.created) == sorted(api.created)
    assert stats.actions["vote"].statuses == {"200": 1, "401": 1}
    votes = sorted(auth for method, p, auth in api.seen if p.endswith("/vote"))
    assert votes == ["", "Bearer msk_d"]
    assert result.scheduled == len(records) == stats.sent
    assert stats.lateness.count == len(records)
    assert stats.lateness.percentile(99) < 0.05
    assert result.target == "rest x2 processes" and 1.0 < result.duration_s < 5
    assert result.samples.rss and result.samples.rss[0]["mb"]["me"] > 0  # the parent sampled
    rows = stats.timeline.rows()
    assert sum(r["requests"] for r in rows) == len(records)
    worst = max(r["lateness_max"] for r in rows)
    assert worst > 0 and worst == pytest.approx(stats.lateness.max(), rel=0.01, abs=2e-6)
