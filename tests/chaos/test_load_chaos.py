"""Chaos while requests arrive, scaled down for CI: the runner of benchmarks/load_chaos.py on
the session's PRIVATE stack, every fault in turn during a short mixed replay, and nothing
accepted is lost or done twice (the full run is `python -m benchmarks.load_chaos`).

Sized for CI (10 s segments, 3 s outages, 20 users: about 90 s of replay and drains on an
idle 2-core machine); the timeout leaves room for a shared, loaded one (4.5 min at load 15-26).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from benchmarks.load_chaos import PrivatePlatform
from loadgen.accounts import provision
from loadgen.chaos import FAULTS, ChaosPlan, run, users_of
from loadgen.chaos_report import write_html, write_json
from memestream.testing.private_stack import PrivateStack

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]
TINY = ChaosPlan(segment_s=10.0, at_s=3.0, outage_s=3.0, users=20, drain_wait_s=60.0, settle_s=25.0)


def test_faults_during_a_replay_lose_nothing_accepted(
    private_stack: PrivateStack, tmp_path: Path
) -> None:
    platform = PrivatePlatform(private_stack)
    try:
        accounts = asyncio.run(provision(private_stack.settings, users_of(TINY)))
        report = asyncio.run(run(platform, TINY, accounts.keys))
    finally:
        private_stack.kill(platform.api)
        private_stack.kill(platform.worker)
    write_json(report, tmp_path / "chaos.json")
    write_html(report, tmp_path / "chaos.html")
    faults = report["summary"]["faults"]
    print("\n" + orjson.dumps(faults).decode())
    assert set(faults) == set(FAULTS)
    for name, fault in faults.items():
        assert fault["fault_error"] is None, (name, fault["fault_error"])
        assert fault["injected_at_s"] is not None and fault["lifted_at_s"] is not None, name
        assert fault["requests"] > 0, name
        assert fault["outbox_pending"] == 0, (name, "staged events never reached Kafka")
        assert set(fault["errors_by_status"]) <= {"503", "error"}, (name, fault)
    accepted = {n: report["faults"][n]["ledger"]["accepted_memes"] for n in FAULTS}
    assert all(accepted.values()), f"every segment had accepted generations: {accepted}"
    assert report["summary"]["lost"] == 0, {n: f["lost"] for n, f in faults.items()}
    ledgers = {n: report["faults"][n]["ledger"] for n in FAULTS}
    for name, ledger in ledgers.items():
        # A SIGKILLed render worker's in-flight requests are redelivered and rendered again:
        # the copies carry the same MemeRendered event id (`rendered_redelivered`, absorbed by
        # consumers). Two different ids for one meme would be a duplicated effect: none, anywhere.
        assert ledger["duplicated_rows"] == 0, (name, ledger)
        assert ledger["vote_events_excess"] == 0, (name, ledger)
        assert ledger["rendered_twice"] == 0, (name, ledger)
    assert "postgres_stop_30s" in (tmp_path / "chaos.html").read_text()
