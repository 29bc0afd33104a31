"""Failover under load, CI-sized: `up --ha` in a private tmp folder, a short mixed trace
replayed while an API replica and then the Redis master are SIGKILLed (each restarted after
a hold): no acknowledged generation or vote is lost. The full run of all seven faults is
`python -m benchmarks.ha_failover` (reports/ha/failover.json)."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.ha_failover import annotate
from loadgen.accounts import provision
from loadgen.chaos import ChaosPlan, run, users_of
from memestream.testing.failover import FailoverPlatform, private_ha_platform

pytestmark = [pytest.mark.ha, pytest.mark.slow]

FAULTS = ("api_replica_sigkill", "redis_master_sigkill")
PLAN = ChaosPlan(segment_s=30.0, at_s=6.0, users=6, drain_wait_s=60.0, settle_s=10.0)
HOLD_S = 10.0


@pytest.mark.timeout(1200)  # `up --ha`, two faults with their drains, `down --ha`
def test_no_acknowledged_write_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    with private_ha_platform() as (stack, env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)  # what a restarted replica reads
        platform = FailoverPlatform(stack, hold_s=HOLD_S)
        accounts = asyncio.run(provision(platform.settings, users_of(PLAN, FAULTS)))
        report = asyncio.run(
            run(platform, PLAN, accounts.keys, FAULTS, lambda n, r: annotate(platform, n, r))
        )
    for name in FAULTS:
        fault = report["faults"][name]
        print(
            f"\n{name}: lost={fault['lost']} duplicated={fault['duplicated_effects']}"
            f" unavailable_s={fault['unavailable_s']['any']} errors={fault['client_errors']}"
            f" victim={fault['victim']} noticed={fault['noticed']}"
        )
        assert fault["fault_error"] is None, fault["fault_error"]
        assert fault["requests"] > 0
        assert fault["lost"] == 0, fault["ledger"]
    assert report["faults"]["redis_master_sigkill"]["victim"] == "redis-master"
    assert report["faults"]["api_replica_sigkill"]["noticed"], "HAProxy never marked it DOWN"
