"""Reads the assigned partitions again from their committed offsets once a rebalance has ended.

faust-streaming ends recovery by resuming the stream partitions and seeking them to their
committed offsets, and only then calls `flow_control.resume()`; but the consumer's flow is
already running (recovery turned it on to read the changelogs), so while the seek is awaited the
fetcher delivers the partitions' first messages into the streams' queues and moves the read
offsets past them. `resume()` then clears those queues (mode's FlowControlEvent clears on every
resume), and nothing seeks back: the cleared messages are never processed nor acknowledged, and
the partition's commits stop before them. A trending worker restarted after SIGKILL onto a
backlog lost events this way (`tests/test_trending_replay.py`).

Seeking to the committed offsets once more, after the clear, delivers them again. Messages that
were processed in between come twice, which every role absorbs: per-meme source offsets in
trending, idempotent upserts and object keys in render, dedupe by event id in analytics.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from faust.sensors import Sensor

log = logging.getLogger(__name__)


class ReseekAfterRebalance(Sensor):
    """A sensor, because `on_rebalance_end` is the one hook Faust calls after the clear."""

    def __init__(self, app: faust.App) -> None:
        super().__init__()
        self.app = app
        self._reseeks: set[asyncio.Task[None]] = set()

    def on_rebalance_end(self, app: Any, state: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self._reseek(app.consumer_generation_id))
        self._reseeks.add(task)
        task.add_done_callback(self._reseeks.discard)

    async def _reseek(self, generation: int) -> None:
        if self.app.rebalancing or self.app.consumer_generation_id != generation:
            return  # another rebalance began; it ends with its own seek
        try:
            await self.app.consumer.perform_seek()
            log.info("rebalance ended: reading again from the committed offsets")
        except Exception as exc:  # the next rebalance seeks anyway; the worker must not die
            log.warning("re-seek after rebalance failed: %s", exc)


def install(app: faust.App) -> None:
    app.sensors.add(ReseekAfterRebalance(app))
