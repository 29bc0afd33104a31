"""Decoding that waits out a schema registry outage instead of parking good messages.

A Confluent-framed message names its writer schema by id; a worker knows the ids of every
version in `schemas/` once its start-up fetch has answered, and asks the registry for any other
(a newer producer's version). When the registry cannot answer, the message is fine and only its
schema is out of reach, so the worker holds the partition and tries again with backoff, as it
does for a store outage; a message that is really undecodable (bad bytes, an id the registry
does not know) still goes to the DLQ at once. The first try is synchronous, so the common
path costs no more than a plain decode.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from domain.events import Event
from producers.serialization import AvroCodec, SerializationError, WriterSchemaUnavailable

E = TypeVar("E", bound=Event)
log = logging.getLogger(__name__)
MAX_BACKOFF_S = 10.0


async def decode_holding(codec: AvroCodec, data: bytes | None) -> Event:
    try:
        return codec.decode(data)
    except WriterSchemaUnavailable as exc:
        return await _wait(codec, data, exc)


async def decode_as_holding(codec: AvroCodec, data: bytes | None, kind: type[E]) -> E:
    try:
        return codec.decode_as(data, kind)
    except WriterSchemaUnavailable as exc:
        event = await _wait(codec, data, exc)
    if not isinstance(event, kind):
        raise SerializationError(f"expected {kind.__name__}, got {type(event).__name__}")
    return event


async def _wait(codec: AvroCodec, data: bytes | None, first: WriterSchemaUnavailable) -> Event:
    delay = 0.25
    log.warning("holding the partition until the schema registry answers: %s", first)
    while True:
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_BACKOFF_S)
        try:
            return codec.decode(data)
        except WriterSchemaUnavailable as exc:
            log.debug("schema registry still unavailable: %s", exc)
