"""Generation time and throughput of a replay, from the meme rows the ledger read back.

Why the rows and not the API: a 202 says only that Kafka has the request. A meme's id is a
UUIDv7 minted when the API accepted it, so `created_at` (derived from the id) is the accept
instant, and `rendered_at` is the render worker's `MemeRendered.occurred_at`: their difference
is accepted-to-rendered, measured by the platform's own clocks on the same host. Throughput
counts the memes rendered inside the replay's window, per minute of it, and the busiest minute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from loadgen.histograms import LatencyHistogram
from loadgen.ledger import MemeRow


def figures(rows: Iterable[MemeRow], started_at: datetime, duration_s: float) -> dict[str, Any]:
    """Accepted-to-rendered percentiles (s) and rendered memes per minute over the run."""
    latency = LatencyHistogram()
    per_second: Counter[int] = Counter()
    end = started_at + timedelta(seconds=duration_s)
    rendered = in_window = 0
    for row in rows:
        if row.status != "rendered" or row.rendered_at is None:
            continue
        rendered += 1
        latency.record(max(0.0, (row.rendered_at - row.created_at).total_seconds()))
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
        "latency_s": latency.summary() if latency.count else None,
        "p95_s": round(latency.percentile(95), 3) if latency.count else None,
        "memes_per_min": round(in_window / minutes, 1),
        # Whole minutes from the start; the last one may be partial.
        "peak_memes_per_min": max(per_minute, default=0),
        "per_second": [[s, per_second[s]] for s in sorted(per_second)],
    }
