"""Generation time and throughput of a replay, from the meme rows the ledger read back.

Why the rows and not the API: a 202 says only that Kafka has the request. A meme's id is a
UUIDv7 minted when the API accepted it, so `created_at` (derived from the id) is the accept
instant, and `rendered_at` is the render worker's `MemeRendered.occurred_at`: their difference
is accepted-to-rendered, measured by the platform's own clocks on the same host. Throughput
counts the memes rendered inside the replay's window, per minute of it, and the busiest minute.
Percentiles are exact: under a backlog they pass the HDR histograms' 10-minute ceiling.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from loadgen.histograms import PERCENTILES
from loadgen.ledger import MemeRow


def figures(rows: Iterable[MemeRow], started_at: datetime, duration_s: float) -> dict[str, Any]:
    """Accepted-to-rendered percentiles (s) and rendered memes per minute over the run."""
    latency: list[float] = []
    per_second: Counter[int] = Counter()
    end = started_at + timedelta(seconds=duration_s)
    rendered = in_window = 0
    for row in rows:
        if row.status != "rendered" or row.rendered_at is None:
            continue
        rendered += 1
        latency.append(max(0.0, (row.rendered_at - row.created_at).total_seconds()))
        offset = (row.rendered_at - started_at).total_seconds()
        per_second[int(offset)] += 1
        if row.rendered_at <= end:
            in_window += 1
    minutes = max(duration_s, 1e-9) / 60
    last = max(per_second, default=-1)
    per_minute = [
        sum(per_second.get(s, 0) for s in range(m * 60, m * 60 + 60))
        for m in range(0, last // 60 + 1)
    ]
    return {
        "rendered": rendered,
        "rendered_in_window": in_window,
        "latency_s": _summary(latency) if latency else None,
        "p95_s": _summary(latency)["p95"] if latency else None,
        "memes_per_min": round(in_window / minutes, 1),
        # Whole minutes from the start; the last one may be partial.
        "peak_memes_per_min": max(per_minute, default=0),
        "per_second": [[s, per_second[s]] for s in sorted(per_second)],
    }


def _summary(values: list[float]) -> dict[str, float]:
    """Exact percentiles (nearest rank): a backlog's latencies run past the HDR histograms'
    10-minute ceiling, and a run renders few enough memes to sort them."""
    ordered = sorted(values)
    n = len(ordered)
    out = {
        f"p{p:g}": round(ordered[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))], 3)
        for p in PERCENTILES
    }
    return out | {"max": round(ordered[-1], 3), "mean": round(sum(ordered) / n, 3), "count": n}
