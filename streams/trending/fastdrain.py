"""A cheaper per-message loop for Faust's consumer (faust-streaming 0.11 to 0.15).

Faust's `Consumer._drain_messages` hands every message to the conductor through
`Service.wait_first(callback(message), suspend_flow.wait())`, which creates four asyncio tasks
and an `asyncio.wait` per message: on this project's 2-core machine that alone caps a no-op
agent near 4,000 messages/s, while aiokafka fetches over 400,000/s. This loop awaits the
callback directly, which is what the task dance comes to: wait_first does not cancel the
callback, so a message handed over before a rebalance is delivered either way, and consumers
must drop messages fetched in an older consumer generation (the trending agent does). The rest
of the loop (read offsets, gap tracking, commit_every) is Faust's, line for line.

Installed by the trending role only (`install()` in `streams.trending.agents.register`), and
only on the faust-streaming versions it was read against; on any other version Faust's own loop
stays and a warning says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import Any, cast

from faust.transport import consumer as faust_consumer

log = logging.getLogger(__name__)
TESTED = ("0.11", "0.12", "0.13", "0.14", "0.15")
YIELD_EVERY = 100


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    acks_enabled_for = self.app.topics.acks_enabled_for
    commit_every = self._commit_every
    since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            ait = cast(AsyncIterator[Any], getmany(timeout=1.0))
            await self.sleep(0)
            if self.should_stop:
                continue
            async for tp, message in ait:
                since_yield += 1
                if since_yield > YIELD_EVERY:
                    await asyncio.sleep(0)
                    since_yield = 0
                offset = message.offset
                r_offset = get_read_offset(tp)
                if r_offset is not None and offset < r_offset:
                    continue
                gap = offset - (r_offset or 0)
                if gap > 1 and r_offset and acks_enabled_for(message.topic):
                    await self._add_gap(tp, r_offset + 1, offset)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                # Delivered even when the flow is suspended, as Faust's `wait_first` does: a
                # message dropped here would let the gap check above mark it acknowledged.
                await callback(message)
                set_read_offset(tp, offset)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            return
        raise


def install() -> bool:
    """Replaces Faust's loop if this faust-streaming version is one it was checked against."""
    installed = version("faust-streaming")
    if not installed.startswith(TESTED):
        log.warning("faust-streaming %s: keeping Faust's own consumer loop", installed)
        return False
    faust_consumer.Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    return True
