"""The shared drafts' pycrdt rooms against real Redis: two replicas (two Drafts on one Redis)
merge concurrent edits of one caption, a late joiner syncs to the merged state, and bad or
oversized updates are refused without touching what is stored."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from pycrdt import Doc, Map, Text

from api.feed.drafts import MAX_STATE_BYTES, DraftError, Drafts, key
from domain.settings import Settings
from sinks.redis import create_redis

pytestmark = pytest.mark.services


@pytest.fixture
async def replicas(stack_settings: Settings) -> AsyncIterator[tuple[Drafts, Drafts]]:
    one, two = create_redis(stack_settings), create_redis(stack_settings)
    yield Drafts(one, 600), Drafts(two, 600)
    await one.aclose()
    await two.aclose()


def client_with(caption: str) -> tuple[Doc, Text]:
    doc = Doc()
    text = doc.get("caption", type=Text)
    text += caption
    return doc, text


def stored_caption(update: bytes) -> str:
    doc = Doc()
    doc.apply_update(update)
    return str(doc.get("caption", type=Text))


async def test_concurrent_edits_on_two_replicas_both_survive(
    replicas: tuple[Drafts, Drafts],
) -> None:
    a, b = replicas
    draft = f"t{uuid.uuid4().hex[:12]}"
    base, _ = client_with("hello")
    await a.apply(draft, base.get_update())
    # Two co-editors start from "hello" and type at the same spot before seeing each other.
    left, right = Doc(), Doc()
    for doc in (left, right):
        doc.apply_update(base.get_update())
    with left.transaction():
        left.get("caption", type=Text).insert(5, " world")
    with right.transaction():
        right.get("caption", type=Text).insert(5, " there")
    updates = [
        left.get_update(base.get_state()),
        right.get_update(base.get_state()),
    ]
    versions = await asyncio.gather(a.apply(draft, updates[0]), b.apply(draft, updates[1]))
    assert sorted(versions) == [2, 3]  # the compare-and-set serialised them; none was lost
    sync = await b.sync(draft, None)
    merged = stored_caption(sync.update)
    assert sorted(merged[5:].split(" ")[1:]) == ["there", "world"] and merged.startswith("hello")
    # Every client that applies both updates, in either order, ends with that same text.
    for order in (updates, updates[::-1]):
        doc = Doc()
        doc.apply_update(base.get_update())
        for update in order:
            doc.apply_update(update)
        assert str(doc.get("caption", type=Text)) == merged
    assert sync.version == 3


async def test_a_late_joiner_gets_only_what_it_lacks(replicas: tuple[Drafts, Drafts]) -> None:
    a, b = replicas
    draft = f"t{uuid.uuid4().hex[:12]}"
    first, _ = client_with("top text")
    await a.apply(draft, first.get_update())
    joiner = Doc()
    joiner.apply_update((await b.sync(draft, None)).update)
    assert str(joiner.get("caption", type=Text)) == "top text"
    # The joiner edits offline; the server meanwhile takes another edit. One sync each way.
    settings = joiner.get("settings", type=Map)
    settings["filter"] = "deep-fry"
    with first.transaction():
        first.get("caption", type=Text).insert(0, ">> ")
    await a.apply(draft, first.get_update((await b.sync(draft, None)).state_vector))
    sync = await b.sync(draft, joiner.get_state())
    joiner.apply_update(sync.update)
    await b.apply(draft, joiner.get_update(sync.state_vector))
    final = Doc()
    final.apply_update((await a.sync(draft, None)).update)
    assert str(final.get("caption", type=Text)) == ">> top text"
    assert final.get("settings", type=Map).to_py() == {"filter": "deep-fry"}
    assert str(joiner.get("caption", type=Text)) == ">> top text"
    # Nothing new since the joiner's state: the diff is Yjs' empty update.
    assert (await a.sync(draft, final.get_state())).update == b"\x00\x00"


async def test_bad_and_oversized_updates_are_refused(
    replicas: tuple[Drafts, Drafts], stack_settings: Settings
) -> None:
    a, _ = replicas
    draft = f"t{uuid.uuid4().hex[:12]}"
    doc, _ = client_with("kept")
    await a.apply(draft, doc.get_update())
    with pytest.raises(DraftError, match="not a Yjs update"):
        await a.apply(draft, b"\x05garbage")
    with pytest.raises(DraftError, match="ids"):
        await a.apply("no spaces", doc.get_update())
    big, _ = client_with("x" * (MAX_STATE_BYTES + 1))
    with pytest.raises(DraftError, match="at most"):
        await a.apply(draft, big.get_update())
    redis = create_redis(stack_settings)
    try:
        assert await redis.hget(key(draft), "v") == b"1"
        assert 0 < await redis.ttl(key(draft)) <= 600
    finally:
        await redis.aclose()
    assert stored_caption((await a.sync(draft, None)).update) == "kept"
