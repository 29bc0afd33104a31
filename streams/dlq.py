"""Dead-letter queues: a message that cannot be processed is parked, never dropped."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from typing import Any

from producers.producer import EventProducer

log = logging.getLogger(__name__)


def message_headers(raw: Any) -> list[tuple[str, bytes]]:
    """A Faust message's headers (a dict or a list of pairs, maybe None) as pairs."""
    if not raw:
        return []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(str(k), bytes(v or b"")) for k, v in items]


def dlq_headers(
    error: BaseException,
    topic: str,
    partition: int,
    offset: int,
    headers: Sequence[tuple[str, bytes]],
) -> list[tuple[str, bytes]]:
    """The original headers plus why and where the message failed."""
    return [
        *headers,
        ("dlq.error.class", type(error).__name__.encode()),
        ("dlq.error.message", str(error)[:2000].encode()),
        ("dlq.error.trace", "".join(traceback.format_exception(error))[-4000:].encode()),
        ("dlq.original.topic", topic.encode()),
        ("dlq.original.partition", str(partition).encode()),
        ("dlq.original.offset", str(offset).encode()),
    ]


async def dead_letter(
    producer: EventProducer,
    error: BaseException,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] = (),
) -> None:
    log.warning("dead-lettering %s[%d]@%d: %s", topic, partition, offset, error)
    await producer.send_raw(
        f"{topic}.dlq", key, value, dlq_headers(error, topic, partition, offset, headers)
    )
