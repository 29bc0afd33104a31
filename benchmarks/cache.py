"""Meme cache hit ratio on a Zipf-distributed read replay (target > 95 %), real Redis + PostgreSQL.

`MEMES` rendered memes are written to PostgreSQL (owner `bench-cache`, removed afterwards) and
their cache entries dropped; then `READS` reads, meme popularity Zipf(s) by rank, go through
`MemeCache.read_through` (Redis hash cache, PostgreSQL on a miss) exactly as
`GET /api/meme/{id}` does, 64 at a time. The per-process copy is off, so every hit is a Redis
hit. Hit ratio = hits / reads from the same counters `/metrics` exposes.

    .venv/bin/python -m benchmarks.cache       (BENCH_QUICK=1: a fifth of the reads)
"""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from benchmarks._result import emit
from domain.ids import id_time, new_id
from domain.metrics import CACHE_HITS, CACHE_MISSES
from domain.settings import get_settings
from sinks.postgres.memes import MemeRepository
from sinks.postgres.pool import create_pool
from sinks.redis import create_redis
from sinks.redis.cache import MemeCache, cache_key

MEMES = 5_000
READS = 20_000 if os.environ.get("BENCH_QUICK") else 100_000
ZIPF_S = 1.1
OWNER = "bench-cache"


def zipf_ranks(count: int, n: int, s: float, seed: int = 7) -> np.ndarray:
    """`count` ranks in 1..n, P(rank k) proportional to k^-s (a truncated Zipf)."""
    weights = 1.0 / np.arange(1, n + 1) ** s
    rng = np.random.default_rng(seed)
    return rng.choice(n, size=count, p=weights / weights.sum())


def seed_memes(database_url: str) -> list[str]:
    ids = [new_id() for _ in range(MEMES)]
    variant = Jsonb(
        [
            {
                "size": "full",
                "key": "bench/full.png",
                "width": 600,
                "height": 600,
                "bytes": 1,
                "media_type": "image/png",
            }
        ]
    )
    with (
        psycopg.connect(database_url) as conn,
        conn.cursor() as cur,
        cur.copy(
            "COPY memes (id, created_at, template_id, texts, status, owner_id, variants) FROM STDIN"
        ) as copy,
    ):
        for meme_id in ids:
            copy.write_row(
                (meme_id, id_time(meme_id), "drake", ["bench", "cache"], "rendered", OWNER, variant)
            )
    return ids


def counts() -> tuple[float, float]:
    return (
        CACHE_HITS.labels(cache="meme")._value.get(),
        CACHE_MISSES.labels(cache="meme")._value.get(),
    )


async def replay(ids: list[str]) -> dict[str, float]:
    settings = get_settings()
    pool = create_pool(settings)
    await pool.open()
    redis = create_redis(settings)
    try:
        await redis.delete(*(cache_key(i) for i in ids))
        cache = MemeCache(redis, settings.meme_cache_ttl_s)
        memes = MemeRepository(pool)
        ranks = zipf_ranks(READS, len(ids), ZIPF_S)
        hits0, misses0 = counts()
        latencies: list[float] = []

        async def read(meme_id: str) -> None:
            started = time.perf_counter()
            record = await cache.read_through(meme_id, memes.get)
            assert record is not None
            latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        for start in range(0, READS, 64):
            await asyncio.gather(*(read(ids[r]) for r in ranks[start : start + 64]))
        elapsed = time.perf_counter() - started
        hits, misses = counts()
        return {
            "hits": hits - hits0,
            "misses": misses - misses0,
            "distinct": len(set(ranks)),
            "p50_ms": float(np.percentile(latencies, 50) * 1000),
            "p95_ms": float(np.percentile(latencies, 95) * 1000),
            "reads_per_s": READS / elapsed,
        }
    finally:
        await redis.delete(*(cache_key(i) for i in ids))
        await redis.aclose()
        await pool.close()


def main() -> None:
    settings = get_settings()
    ids = seed_memes(settings.database_url)
    try:
        result = asyncio.run(replay(ids))
    finally:
        with psycopg.connect(settings.database_url) as conn:
            conn.execute("DELETE FROM memes WHERE owner_id = %s", (OWNER,))
    ratio = result["hits"] / (result["hits"] + result["misses"])
    ideal = 1 - result["distinct"] / READS
    print(f"cores: {os.cpu_count()}")
    print(
        f"{READS:,} reads of {MEMES:,} memes, Zipf s={ZIPF_S}, cold cache: "
        f"{result['hits']:,.0f} hits, {result['misses']:,.0f} misses -> hit ratio {ratio:.2%} "
        f"(the ideal, one miss per distinct meme: {ideal:.2%})"
    )
    print(
        f"read_through latency p50 {result['p50_ms']:.2f} ms, p95 {result['p95_ms']:.2f} ms, "
        f"{result['reads_per_s']:,.0f} reads/s (64 concurrent)"
    )
    print("target (> 95 %):", "met" if ratio > 0.95 else "NOT met")
    emit(
        "cache",
        [
            {
                "target": "cache_hit_ratio",
                "value": round(ratio * 100, 2),
                "unit": "%",
                "figure": f"{ratio:.1%} hit ratio, p95 {result['p95_ms']:.1f} ms per read",
                "method": f"{READS:,} Zipf(s={ZIPF_S}) reads of {MEMES:,} memes through the Redis "
                "read-through cache, cold start, PostgreSQL on a miss",
            },
        ],
    )


if __name__ == "__main__":
    main()
