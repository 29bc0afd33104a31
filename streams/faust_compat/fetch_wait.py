"""How long the broker may hold a worker's fetch when none of the named partitions has data.

Faust builds its aiokafka consumer with `fetch_max_wait_ms=1500` and no setting for it.
aiokafka keeps one fetch in flight per broker and leaves a partition out of it while that
partition's last records wait to be consumed. So a worker a moment behind on its busy topics
can send a fetch naming only its quiet ones (trending also reads `meme.rendered` and
`meme.deleted`); the broker holds it the whole 1.5 s, and the busy topics wait behind it. In
`benchmarks/trending.py` that was a 1.2-1.6 s stall, after which a worker at 10,000 events/s
stayed ~1.5 s behind for good. A short wait bounds the stall; an idle worker fetches more often.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

#: Faust's own wait, for an app `install` did not see.
FAUST_DEFAULT_MS = 1500
_original = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
_max_wait_ms: WeakKeyDictionary[faust.App, int] = WeakKeyDictionary()


def _create_worker_consumer(self: Any, transport: Any) -> Any:
    consumer = _original(self, transport)
    # aiokafka reads it when the consumer starts its fetcher; there is no public setter.
    consumer._fetch_max_wait_ms = _max_wait_ms.get(self.app, FAUST_DEFAULT_MS)
    return consumer


def install(app: faust.App, max_wait_ms: int) -> None:
    """Sets the wait for the consumers Faust creates for `app` from now on."""
    _max_wait_ms[app] = max_wait_ms
    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
