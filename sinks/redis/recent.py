"""The capped list of the newest rendered memes (newest first), for "recent" views and warming."""

from __future__ import annotations

from redis.asyncio import Redis

RECENT_KEY = "memes:recent"


class RecentMemes:
    def __init__(self, redis: Redis, max_items: int) -> None:
        self.redis = redis
        self.max_items = max_items

    async def push(self, *meme_ids: str) -> None:
        """Adds ids (the last one ends up first); a replayed id is not listed twice."""
        if not meme_ids:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for meme_id in meme_ids:
                pipe.lrem(RECENT_KEY, 0, meme_id)
                pipe.lpush(RECENT_KEY, meme_id)
            pipe.ltrim(RECENT_KEY, 0, self.max_items - 1)
            await pipe.execute()

    async def remove(self, meme_id: str) -> None:
        await self.redis.lrem(RECENT_KEY, 0, meme_id)  # type: ignore[misc]

    async def list(self, limit: int = 50) -> list[str]:
        raw = await self.redis.lrange(RECENT_KEY, 0, limit - 1)  # type: ignore[misc]
        return [item.decode() for item in raw]
