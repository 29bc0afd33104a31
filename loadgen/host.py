"""The machine a run shared: core count and load average, sampled while it ran.

Why: the platform, the replayer and whatever else runs here share the same cores, so every
figure is printed with the core count and the load average during the run (issue 16); a
figure from a busy host is not comparable with one from a quiet host without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class HostLoad:
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (t, 1-min load average)

    def sample(self, t: float) -> None:
        self.samples.append((round(t, 1), round(os.getloadavg()[0], 2)))

    def as_dict(self) -> dict[str, object]:
        loads = [load for _, load in self.samples]
        return {
            "cores": self.cores,
            "load_avg_1m_mean": round(sum(loads) / len(loads), 2) if loads else None,
            "load_avg_1m_max": max(loads, default=None),
            "load_avg_1m_start": loads[0] if loads else None,
            "load_avg_1m_end": loads[-1] if loads else None,
            "samples": [list(s) for s in self.samples],
        }

    def line(self) -> str:
        d = self.as_dict()
        return (
            f"{d['cores']} cores, load average (1 min) mean {d['load_avg_1m_mean']} "
            f"max {d['load_avg_1m_max']}"
        )


async def watch(host: HostLoad, stop: asyncio.Event, interval_s: float = 5.0) -> None:
    """Samples the load average every `interval_s` until `stop` is set (and once more then)."""
    start = time.monotonic()
    while not stop.is_set():
        host.sample(time.monotonic() - start)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
    host.sample(time.monotonic() - start)
