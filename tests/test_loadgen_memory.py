"""The leak verdict and `rss_growth_pct`: growth is read over the run's last 20 minutes."""

from __future__ import annotations

import pytest

from loadgen.memory import GROWTH_WINDOW_S, growth_pct, leak_verdict


def test_growth_is_measured_over_the_last_window_only() -> None:
    # 30 minutes: a warm-up from 100 to 200 MiB in the first 10, then flat.
    samples = [(float(t), 100.0 + min(t, 600) / 6) for t in range(0, 1801, 10)]
    assert growth_pct(samples) == pytest.approx(0.0)
    assert growth_pct(samples, window_s=1800) == pytest.approx(100.0)


def test_growth_at_the_end_of_a_long_run_is_seen() -> None:
    samples = [
        (float(t), 100.0 if t < 1200 else 100.0 + (t - 1200) / 60) for t in range(0, 2401, 60)
    ]
    # Over the last 20 minutes: from 100 MiB (t=1200) to 120 MiB.
    assert growth_pct(samples) == pytest.approx(20.0)
    assert leak_verdict(samples)["slope_mb_per_min"] == pytest.approx(1.0)


def test_a_short_run_is_measured_whole_and_too_few_samples_give_none() -> None:
    assert GROWTH_WINDOW_S == 1200
    assert growth_pct([(0.0, 100.0), (5.0, 105.0)]) == pytest.approx(5.0)
    assert growth_pct([(0.0, 100.0)]) is None
    assert growth_pct([]) is None
    assert growth_pct([(0.0, 0.0), (1.0, 5.0)]) is None
