"""Resident memory of the API and workers, sampled during a replay to spot leaks.

A leak shows as RSS that keeps climbing after warm-up instead of levelling off, so the
verdict fits a line through the second half of the samples: a slope above
`LEAK_MB_PER_MIN` together with growth above `LEAK_GROWTH` of the starting RSS is flagged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psutil

LEAK_MB_PER_MIN = 5.0
LEAK_GROWTH = 0.10
#: `rss_growth_pct` looks at this last stretch of a run: a long run's warm-up (caches and pools
#: filling in its first minutes) is not growth, what still climbs at the end is.
GROWTH_WINDOW_S = 1200.0


def discover_pids(stack_dir: Path) -> dict[str, int]:
    """The API's and workers' pids from the pid files `memestream up` writes."""
    found: dict[str, int] = {}
    run = stack_dir / "run"
    for path in sorted([run / "api.pid", *run.glob("worker-*.pid")]):
        try:
            found[path.stem] = int(json.loads(path.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return {name: pid for name, pid in found.items() if psutil.pid_exists(pid)}


class RssSampler:
    def __init__(self, pids: dict[str, int]) -> None:
        self.processes: dict[str, psutil.Process] = {}
        for name, pid in pids.items():
            try:
                self.processes[name] = psutil.Process(pid)
            except psutil.Error:
                continue

    def sample(self) -> dict[str, float]:
        """RSS in MiB per process, children included (the render pool is part of a worker)."""
        out: dict[str, float] = {}
        for name, proc in list(self.processes.items()):
            try:
                rss = proc.memory_info().rss
                for child in proc.children(recursive=True):
                    try:
                        rss += child.memory_info().rss
                    except psutil.Error:
                        continue
                out[name] = rss / 1_048_576
            except psutil.Error:
                del self.processes[name]
        return out


def leak_verdict(samples: list[tuple[float, float]]) -> dict[str, float | bool]:
    """Slope (MiB/min) over the second half, total growth, and whether it looks like a leak."""
    if len(samples) < 4:
        last = samples[-1][1] if samples else 0.0
        return {
            "slope_mb_per_min": 0.0,
            "growth_mb": 0.0,
            "start_mb": round(samples[0][1], 1) if samples else 0.0,
            "end_mb": round(last, 1),
            "peak_mb": round(max((s[1] for s in samples), default=0.0), 1),
            "suspected_leak": False,
        }
    half = samples[len(samples) // 2 :]
    t = np.array([s[0] for s in half])
    rss = np.array([s[1] for s in half])
    slope = float(np.polyfit(t, rss, 1)[0] * 60) if np.ptp(t) > 0 else 0.0
    start = samples[0][1]
    growth = samples[-1][1] - start
    leak = slope > LEAK_MB_PER_MIN and growth > LEAK_GROWTH * max(start, 1.0)
    return {
        "slope_mb_per_min": round(slope, 2),
        "growth_mb": round(growth, 1),
        "start_mb": round(start, 1),
        "end_mb": round(samples[-1][1], 1),
        "peak_mb": round(max(s[1] for s in samples), 1),
        "suspected_leak": bool(leak),
    }


def growth_pct(
    samples: list[tuple[float, float]], window_s: float = GROWTH_WINDOW_S
) -> float | None:
    """RSS growth over the last `window_s` of the samples (the whole run when shorter), in % of
    the RSS at the window's start; None without two samples in it."""
    if not samples:
        return None
    since = samples[-1][0] - window_s
    window = [s for s in samples if s[0] >= since]
    if len(window) < 2 or window[0][1] <= 0:
        return None
    return 100 * (window[-1][1] - window[0][1]) / window[0][1]
