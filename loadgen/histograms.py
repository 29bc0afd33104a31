"""Latency histograms on HdrHistogram (the `hdrhistogram` package), not hand-rolled.

Values are recorded in microseconds from 1 us to 10 min with 3 significant digits, so
percentiles are exact to 0.1 % and merging two histograms loses nothing. `Timeline`
keeps one histogram per second of the run for percentiles over time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 600_000_000
SIGNIFICANT_DIGITS = 3
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)


def _new() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


class LatencyHistogram:
    """Seconds in, seconds out; microsecond resolution underneath."""

    def __init__(self) -> None:
        self._h = _new()

    def record(self, seconds: float) -> None:
        us = min(HIGHEST_US, max(LOWEST_US, round(seconds * 1_000_000)))
        self._h.record_value(us)

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentile(self, p: float) -> float:
        """The p-th percentile in seconds (0.0 when empty)."""
        if not self.count:
            return 0.0
        return self._h.get_value_at_percentile(p) / 1_000_000

    def max(self) -> float:
        return self._h.get_max_value() / 1_000_000 if self.count else 0.0

    def mean(self) -> float:
        return self._h.get_mean_value() / 1_000_000 if self.count else 0.0

    def merge(self, other: LatencyHistogram) -> None:
        self._h.add(other._h)

    def encode(self) -> str:
        """The standard compressed HdrHistogram encoding (readable by any HDR tool)."""
        return self._h.encode().decode() if self.count else ""

    @classmethod
    def decode(cls, encoded: str) -> LatencyHistogram:
        hist = cls()
        if encoded:
            hist._h = HdrHistogram.decode(encoded.encode())
        return hist

    def summary(self, percentiles: Iterable[float] = PERCENTILES) -> dict[str, float]:
        out = {f"p{p:g}": round(self.percentile(p), 6) for p in percentiles}
        out |= {"max": round(self.max(), 6), "mean": round(self.mean(), 6), "count": self.count}
        return out


@dataclass(slots=True)
class Timeline:
    """One histogram, one request count, one error count and the generator's worst lateness
    per whole second of the run."""

    latencies: dict[int, LatencyHistogram] = field(default_factory=dict)
    requests: dict[int, int] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)
    lateness_max: dict[int, float] = field(default_factory=dict)

    def record(self, at: float, seconds: float, ok: bool) -> None:
        bucket = int(at)
        hist = self.latencies.get(bucket)
        if hist is None:  # not setdefault: allocating a histogram per call costs ~0.2 ms
            hist = self.latencies[bucket] = LatencyHistogram()
        hist.record(seconds)
        self.requests[bucket] = self.requests.get(bucket, 0) + 1
        if not ok:
            self.errors[bucket] = self.errors.get(bucket, 0) + 1

    def late(self, at: float, seconds: float) -> None:
        bucket = int(at)
        if seconds > self.lateness_max.get(bucket, 0.0):
            self.lateness_max[bucket] = seconds

    def to_wire(self) -> dict[str, dict[int, object]]:
        return {
            "latencies": {s: h.encode() for s, h in self.latencies.items()},
            "requests": dict(self.requests),
            "errors": dict(self.errors),
            "lateness_max": dict(self.lateness_max),
        }

    def merge_wire(self, wire: dict[str, dict[int, object]]) -> None:
        for second, encoded in wire["latencies"].items():
            hist = LatencyHistogram.decode(str(encoded))
            mine = self.latencies.get(int(second))
            if mine is None:
                self.latencies[int(second)] = hist
            else:
                mine.merge(hist)
        for name in ("requests", "errors"):
            counts: dict[int, int] = getattr(self, name)
            for second, n in wire[name].items():
                counts[int(second)] = counts.get(int(second), 0) + int(n)  # type: ignore[call-overload]
        for second, late in wire["lateness_max"].items():
            self.late(int(second), float(late))  # type: ignore[arg-type]

    def rows(self) -> list[dict[str, float]]:
        if not self.requests:
            return []
        rows = []
        for second in range(min(self.requests), max(self.requests) + 1):
            hist = self.latencies.get(second) or LatencyHistogram()
            rows.append(
                {
                    "t": second,
                    "requests": self.requests.get(second, 0),
                    "errors": self.errors.get(second, 0),
                    "p50": hist.percentile(50),
                    "p95": hist.percentile(95),
                    "p99": hist.percentile(99),
                    "lateness_max": self.lateness_max.get(second, 0.0),
                }
            )
        return rows
