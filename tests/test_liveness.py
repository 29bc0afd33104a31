"""A worker's `/health/live`: 200 while in its consumer group, 503 after the grace out of it."""

from __future__ import annotations

import httpx
import pytest

from streams import liveness
from streams.liveness import LIVENESS_PATH, Membership


def test_a_running_worker_is_a_member_of_its_group(render_worker: int) -> None:
    answer = httpx.get(f"http://127.0.0.1:{render_worker}{LIVENESS_PATH}", timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["alive"] is True and body["member"] is True and body["absent_s"] == 0.0


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_probe_fails_only_after_the_grace_out_of_the_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Membership itself is read from aiokafka (the test above, on a real worker); what a
    # session that expired and never came back looks like is simulated here.
    member = {"now": True}
    clock = _Clock()
    monkeypatch.setattr(liveness, "is_member", lambda app: member["now"])
    monkeypatch.setattr(liveness.time, "monotonic", clock)
    membership = Membership(app=None, grace_s=30.0)  # type: ignore[arg-type]
    assert membership.report()[0] is True
    member["now"] = False
    clock.now += 29.0  # a rebalance or a short broker outage: still alive
    alive, body = membership.report()
    assert alive is True and body["member"] is False and body["absent_s"] == 29.0
    clock.now += 2.0
    alive, body = membership.report()
    assert alive is False and body["absent_s"] == 31.0
    member["now"] = True  # rejoined: alive again at once
    assert membership.report() == (
        True,
        {"alive": True, "member": True, "absent_s": 0.0, "grace_s": 30.0},
    )


def test_a_worker_that_never_joined_counts_from_its_start(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(liveness, "is_member", lambda app: False)
    monkeypatch.setattr(liveness.time, "monotonic", clock)
    membership = Membership(app=None, grace_s=10.0)  # type: ignore[arg-type]
    clock.now += 9.0
    assert membership.report()[0] is True
    clock.now += 1.5
    assert membership.report()[0] is False
