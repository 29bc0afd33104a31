"""Workers wait out a registry outage for a schema id they never saw, and park (DLQ) only
what is really undecodable: against the stack's registry behind a loopback proxy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from domain.events import Vote
from domain.ids import new_id
from domain.settings import Settings
from producers.serialization import (
    AvroCodec,
    SerializationError,
    WireFormat,
    WriterSchemaUnavailable,
    default_registry,
    registry_ids,
)
from streams.schema_wait import decode_as_holding, decode_holding
from tests.chaos.proxy import ChaosProxy

pytestmark = pytest.mark.services


@pytest.fixture
def proxied(stack_settings: Settings) -> Iterator[tuple[ChaosProxy, Settings]]:
    url = urlsplit(str(stack_settings.schema_registry_url))
    with ChaosProxy(url.hostname or "127.0.0.1", url.port or 80) as proxy:
        netloc = f"127.0.0.1:{proxy.port}"
        yield (
            proxy,
            stack_settings.model_copy(
                update={"schema_registry_url": url._replace(netloc=netloc).geturl()}
            ),
        )


def _fresh_reader(settings: Settings) -> AvroCodec:
    """A reader that has fetched no id yet (as a worker whose start-up fetch failed)."""
    ids = registry_ids(default_registry(), settings)
    return AvroCodec(wire_format=WireFormat.SINGLE_OBJECT, schema_ids=ids)


async def test_a_worker_holds_until_the_registry_answers(
    stack_settings: Settings, proxied: tuple[ChaosProxy, Settings]
) -> None:
    proxy, settings = proxied
    vote = Vote(meme_id=new_id(), user_id="u", value=1)
    data = AvroCodec.from_settings(stack_settings).encode(vote)
    reader = _fresh_reader(settings)
    proxy.cut()
    with pytest.raises(WriterSchemaUnavailable):
        reader.decode(data)  # what a plain reader sees
    waiting = asyncio.create_task(decode_as_holding(reader, data, Vote))
    await asyncio.sleep(1.5)
    assert not waiting.done(), "decoded without the registry"
    proxy.restore()
    assert await asyncio.wait_for(waiting, 20) == vote


async def test_an_id_the_registry_does_not_know_is_undecodable_at_once(
    stack_settings: Settings,
) -> None:
    reader = _fresh_reader(stack_settings)
    data = b"\x00" + (2**31 - 7).to_bytes(4, "big") + b"\x02"
    with pytest.raises(SerializationError) as refused:
        await asyncio.wait_for(decode_holding(reader, data), 10)
    assert not isinstance(refused.value, WriterSchemaUnavailable)
