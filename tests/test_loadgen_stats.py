"""Per-action unavailability: the longest run of seconds in which an action answered errors."""

from __future__ import annotations

from loadgen.stats import Outcome, Stats


def test_unavailable_s_is_the_longest_run_of_error_seconds_and_survives_the_wire() -> None:
    stats = Stats()
    ok, error = Outcome(status=202), Outcome(status=503)
    for at, outcome in [
        (0.2, ok),
        (1.1, error),  # 1
        (2.5, error),  # 2
        (2.6, ok),
        (3.9, error),  # 3: a run of 3 seconds (1, 2, 3)
        (5.0, error),  # 5: alone
        (7.3, ok),
    ]:
        stats.record("generate", at, 0.01, outcome)
    stats.record("read", 4.0, 0.01, Outcome(status=None, error="connection refused"))
    assert stats.actions["generate"].unavailable_s() == 3
    assert stats.actions["generate"].as_dict()["unavailable_s"] == 3
    assert stats.actions["read"].unavailable_s() == 1
    merged = Stats()
    merged.merge_wire(stats.to_wire())
    merged.merge_wire(Stats().to_wire())
    assert merged.actions["generate"].unavailable_s() == 3
    assert Stats()._action("vote").unavailable_s() == 0
