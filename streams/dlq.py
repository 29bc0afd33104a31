"""Dead-letter queues: a message that cannot be processed is parked, never dropped.

Every agent parks its poison through `dead_letter`, which also counts it
(`memestream_dlq_messages_total`) and names the consumer group in the `dlq.consumer.group`
header: counting here rather than in each agent means no role's dead letters go uncounted,
and a topic several groups read (votes: trending and analytics) says whose copy failed.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from typing import Any

from faust.types import Message

from domain.logs import bound_request_id, request_id_from_headers
from domain.metrics import DLQ_MESSAGES
from producers.producer import EventProducer

log = logging.getLogger(__name__)
#: The group named when a caller does not say which it is (older callers).
UNKNOWN_GROUP = "unknown"


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
    group: str = UNKNOWN_GROUP,
) -> list[tuple[str, bytes]]:
    """The original headers plus why and where the message failed, and who gave up on it."""
    return [
        *headers,
        ("dlq.error.class", type(error).__name__.encode()),
        ("dlq.error.message", str(error)[:2000].encode()),
        ("dlq.error.trace", "".join(traceback.format_exception(error))[-4000:].encode()),
        ("dlq.original.topic", topic.encode()),
        ("dlq.original.partition", str(partition).encode()),
        ("dlq.original.offset", str(offset).encode()),
        ("dlq.consumer.group", group.encode()),
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
    group: str | None = None,
) -> None:
    """Parks one message in `<topic>.dlq`; counted once Kafka acknowledged it.

    `group` is the full consumer group id (the Faust app's `conf.id`); without it the header
    and the metric say `unknown`.
    """
    group = group or UNKNOWN_GROUP
    log.warning("dead-lettering %s[%d]@%d (%s): %s", topic, partition, offset, group, error)
    await producer.send_raw(
        f"{topic}.dlq", key, value, dlq_headers(error, topic, partition, offset, headers, group)
    )
    DLQ_MESSAGES.labels(topic=topic, reason=type(error).__name__, group=group).inc()


async def dead_letter_message(
    producer: EventProducer, error: BaseException, message: Message, *, group: str
) -> None:
    """`dead_letter` for a message as Faust fetched it, its request id on the log line."""
    headers = message_headers(message.headers)
    with bound_request_id(request_id_from_headers(headers)):
        await dead_letter(
            producer,
            error,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            headers=headers,
            group=group,
        )
