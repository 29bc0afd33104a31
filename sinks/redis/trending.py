"""The trending sorted sets `trending:{window}` (and `trending:rising`), trimmed to the top N.

Writers are the trending workers: every batch adds the scores of the memes it changed and trims
(one pipelined round trip); every tick re-adds the worker's own top N (so a meme pushed out by a
trim comes back when others fall) and removes memes that left the window. Scores are
landmark-relative (see streams/trending/score.py); the hash `trending:{window}:meta` holds the
landmark and half-life, so a reader decays a score to now: score * 2 ** ((landmark - now) / H).
Readers page with ZREVRANGE.

When the API rebuilds an empty set from a fallback store, it sets `trending:{window}:warm`: the
next worker tick then replaces the whole set, so fallback scores never mix with stream scores.

A batch's pipeline (`update`, `remove`) is a CLIENT span under the worker's batch span; the
tick's calls run outside one and make none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from domain.tracing import client_span, get_tracer

tracer = get_tracer(__name__)


def set_key(window: str) -> str:
    """The set of a window of domain/trending_windows.py, by its name."""
    return f"trending:{window}"


#: Memes rising fastest within the rising window (domain.trending_windows.RISING_WINDOW).
RISING_KEY = "trending:rising"


def meta_key(window: str) -> str:
    return f"trending:{window}:meta"


def warm_key(window: str) -> str:
    return f"trending:{window}:warm"


def _attrs(pipe: Pipeline) -> dict[str, str | int]:
    """A pipeline span's attributes: one round trip of this many commands."""
    return {
        "db.system.name": "redis",
        "db.operation.name": "PIPELINE",
        "db.operation.batch.size": len(pipe),
    }


@dataclass(frozen=True, slots=True)
class Ranked:
    meme_id: str
    score: float


@dataclass(frozen=True, slots=True)
class Decay:
    landmark: float
    half_life_s: float

    def now(self, score: float, now: float) -> float:
        return score * 2.0 ** ((self.landmark - now) / self.half_life_s)


class TrendingSets:
    def __init__(self, redis: Redis, top_n: int) -> None:
        self.redis = redis
        self.top_n = top_n

    async def update(
        self, scores: Mapping[str, Mapping[str, float]], removed: Iterable[str] = ()
    ) -> None:
        """Adds `{set: {meme: score}}`, removes `removed` from every set, trims, in one trip."""
        removed = list(removed)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, members in scores.items():
                if members:
                    pipe.zadd(key, dict(members))
                    pipe.zremrangebyrank(key, 0, -self.top_n - 1)
            if removed:
                for key in scores:
                    pipe.zrem(key, *removed)
            with client_span("redis trending update", tracer=tracer, attributes=_attrs(pipe)):
                await pipe.execute()

    async def remove(self, keys: Iterable[str], meme_ids: Iterable[str]) -> None:
        """Takes memes out of every set at once (a delete must show within a second)."""
        meme_ids = list(meme_ids)
        if not meme_ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(key, *meme_ids)
            with client_span("redis trending remove", tracer=tracer, attributes=_attrs(pipe)):
                await pipe.execute()

    async def reconcile(
        self,
        key: str,
        top: Mapping[str, float],
        gone: Iterable[str],
        *,
        replace: bool,
        decay: Decay | None = None,
        window: str | None = None,
    ) -> bool:
        """Re-adds a worker's top N (may be empty: then only `gone` leaves); with `replace` (a
        landmark moved, or a warm marker was found) the set is swapped atomically."""
        gone = [m for m in gone if m not in top]
        async with self.redis.pipeline(transaction=replace) as pipe:
            if replace:
                pipe.delete(key)
            if top:
                pipe.zadd(key, dict(top))
            if gone and not replace:
                pipe.zrem(key, *gone)
            pipe.zremrangebyrank(key, 0, -self.top_n - 1)
            if decay is not None and window is not None:
                meta = {"landmark": repr(decay.landmark), "half_life_s": repr(decay.half_life_s)}
                pipe.hset(meta_key(window), mapping=meta)
            await pipe.execute()
        return replace

    async def status(self, windows: list[str]) -> list[tuple[int, bool]]:
        """Per window: the set's size, and whether the API left a warm marker (now taken)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for window in windows:
                pipe.zcard(set_key(window))
                pipe.delete(warm_key(window))
            results = await pipe.execute()
        return [(int(results[i]), bool(results[i + 1])) for i in range(0, len(results), 2)]

    async def read(
        self, window: str, offset: int, limit: int
    ) -> tuple[list[Ranked], int, Decay | None]:
        """A page of the set (best first), the set's size and its decay (None before a tick)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(set_key(window), offset, offset + limit - 1, withscores=True)
            pipe.zcard(set_key(window))
            pipe.hgetall(meta_key(window))
            rows, size, meta = await pipe.execute()
        ranked = [Ranked(m.decode() if isinstance(m, bytes) else m, float(s)) for m, s in rows]
        decay = None
        if meta:
            meta = {k.decode() if isinstance(k, bytes) else k: float(v) for k, v in meta.items()}
            decay = Decay(meta["landmark"], meta["half_life_s"])
        return ranked, int(size), decay

    async def warm(self, window: str, ranked: Iterable[Ranked]) -> bool:
        """Fills an empty set from a fallback answer; the next worker tick replaces it."""
        members = {r.meme_id: r.score for r in ranked}
        if not members:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(set_key(window), members)
            pipe.set(warm_key(window), b"1")
            await pipe.execute()
        return True

    async def exists(self, window: str) -> bool:
        return bool(await self.redis.exists(set_key(window)))
