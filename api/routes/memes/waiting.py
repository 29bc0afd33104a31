"""Waiting for a meme's render to finish (`POST /api/meme/generate?wait=`)."""

from __future__ import annotations

import asyncio
import contextlib

from api.dependencies import Services
from sinks.postgres.errors import POSTGRES_ERRORS
from sinks.postgres.memes import MemeRecord
from sinks.redis import REDIS_ERRORS
from sinks.redis.status import StatusWaiter

FINAL = frozenset({"rendered", "failed", "rejected", "flagged"})  # flagged: rendered, in review


async def await_final(
    meme_id: str, services: Services, waiter: StatusWaiter | None, wait_s: float
) -> MemeRecord | None:
    """The meme once rendered or failed, else None after `wait_s`.

    Pub/sub wakes the waiter at once; PostgreSQL, polled every half second, is the fallback
    when Redis or the publisher (the render worker) is away.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait_s, services.settings.max_wait_s)
    while True:
        with contextlib.suppress(*POSTGRES_ERRORS):
            record = await services.memes.get(meme_id)
            if record is not None and record.status in FINAL:
                return record
        left = deadline - loop.time()
        if left <= 0:
            return None
        pause = min(0.5, left)
        if waiter is None:
            await asyncio.sleep(pause)
            continue
        try:
            await waiter.next(pause)
        except REDIS_ERRORS:
            waiter = None
