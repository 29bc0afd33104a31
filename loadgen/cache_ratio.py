"""The API's cache hit ratio over a replay, from its own Prometheus counters.

Why the API's counters rather than Redis' `keyspace_hits`: the meme cache answers from a
per-process copy first (sinks/redis/cache.py), which Redis never sees, and Redis also serves
rate limits, sessions and idempotency records whose lookups are not cache reads. The API counts
each meme lookup as `memestream_cache_hits_total` or `..._misses_total` (by `cache`); the ratio
is the difference of two scrapes of `/metrics`, one before the replay and one after.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

HITS = "memestream_cache_hits"
MISSES = "memestream_cache_misses"

Counts = dict[tuple[str, str], float]  # (hits|misses, cache) -> count


def parse(text: str) -> Counts:
    """Hit and miss counters per cache from a Prometheus text exposition."""
    out: Counts = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (HITS, MISSES):
            continue
        kind = "hits" if family.name == HITS else "misses"
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = (kind, sample.labels.get("cache", ""))
                out[key] = out.get(key, 0.0) + sample.value
    return out


async def scrape(base_url: str, timeout_s: float = 10.0) -> Counts:
    """The API's counters now (empty when `/metrics` cannot be read)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(f"{base_url.rstrip('/')}/metrics") as response,
        ):
            if response.status != 200:
                return {}
            return parse(await response.text())
    except (aiohttp.ClientError, TimeoutError):
        return {}


def ratio(before: Mapping[tuple[str, str], float], after: Counts) -> dict[str, object]:
    """Hits / (hits + misses) between the scrapes, overall and per cache (None: no lookups)."""
    caches = sorted({cache for _, cache in after})
    per_cache: dict[str, dict[str, float | None]] = {}
    total_hits = total_misses = 0.0
    for cache in caches:
        hits = after.get(("hits", cache), 0.0) - before.get(("hits", cache), 0.0)
        misses = after.get(("misses", cache), 0.0) - before.get(("misses", cache), 0.0)
        total_hits, total_misses = total_hits + hits, total_misses + misses
        looked = hits + misses
        per_cache[cache] = {
            "hits": hits,
            "misses": misses,
            "ratio": round(hits / looked, 4) if looked > 0 else None,
        }
    looked = total_hits + total_misses
    return {
        "ratio": round(total_hits / looked, 4) if looked > 0 else None,
        "hits": total_hits,
        "misses": total_misses,
        "caches": per_cache,
    }
