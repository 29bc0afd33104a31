"""Who may follow which channel (api/feed/access.py): the rule, then both transports against
the real API and Kafka: refusals, and held-back memes reaching their owner and admins only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import websockets

from api.feed.access import check, may_follow, needs_caller
from api.feed.messages import NEW, REVIEW, TRENDING, VOTES
from api.problems import Problem
from domain.events import FeedEvent, FeedKind
from domain.ids import new_id
from domain.settings import Settings
from tests.data_helpers import PASSWORD, make_admin, register
from tests.feed_support import collect, feed_api, private_topic, produce, rendered


@dataclass(frozen=True)
class Caller:
    user_id: str | None
    is_admin: bool = False


ANN = Caller("ann")
ADMIN = Caller("root", is_admin=True)
NOBODY = Caller(None)


@pytest.mark.parametrize("channel", [NEW, TRENDING, VOTES, "meme:abc", "draft:x"])
@pytest.mark.parametrize("caller", [None, NOBODY, ANN, ADMIN])
def test_public_channels_are_for_everyone(channel: str, caller: Caller | None) -> None:
    assert may_follow(channel, caller)
    assert not needs_caller([channel])


def test_a_user_channel_is_for_its_user_and_admins() -> None:
    assert may_follow("user:ann", ANN)
    assert may_follow("user:ann", ADMIN)
    assert not may_follow("user:bob", ANN)
    assert not may_follow("user:ann", NOBODY)
    assert not may_follow("user:ann", None)
    assert needs_caller([NEW, "user:ann"])


def test_review_is_for_admins_only() -> None:
    assert may_follow(REVIEW, ADMIN)
    assert not may_follow(REVIEW, ANN)
    assert needs_caller([REVIEW])


def test_anonymous_gets_401_and_another_user_403() -> None:
    with pytest.raises(Problem) as anonymous:
        check([NEW, "user:ann"], NOBODY)
    assert anonymous.value.status == 401
    with pytest.raises(Problem) as other:
        check(["user:ann"], Caller("bob"))
    assert other.value.status == 403
    assert "user:ann" in (other.value.detail or "")
    with pytest.raises(Problem) as review:
        check([REVIEW], ANN)
    assert review.value.status == 403
    check([NEW, "user:ann"], ANN)  # allowed: no exception
    check([REVIEW, "user:bob"], ADMIN)


# Against the real API and Kafka: both transports, both WebSocket write paths.


@pytest.fixture(scope="module")
def topic(stack_settings: Settings) -> Iterator[str]:
    with private_topic(stack_settings) as name:
        yield name


@pytest.fixture(scope="module")
def api(stack_settings: Settings, topic: str) -> Iterator[str]:
    with feed_api(stack_settings, "api-feed-access", FEED_TOPIC=topic) as url:
        yield url


@pytest.fixture(scope="module")
def people(api: str, stack_settings: Settings) -> dict[str, dict[str, Any]]:
    """ann and bob (users) and an admin, each with Bearer headers."""
    with httpx.Client(base_url=api, timeout=10) as client:
        ann, bob, admin = (register(client, p) for p in ("ann", "bob", "adm"))  # type: ignore[arg-type]
        make_admin(stack_settings, admin["id"])
        login = client.post(
            "/api/auth/login", json={"username": admin["username"], "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        admin["headers"] = {"Authorization": f"Bearer {login.json()['token']}"}
    return {"ann": ann, "bob": bob, "admin": admin}


def held(owner: str, status: str = "flagged") -> FeedEvent:
    """A meme moderation held back, as the render worker or a review announces it."""
    kind = FeedKind.RENDERED if status == "flagged" else FeedKind.FAILED
    return FeedEvent(meme_id=new_id(), kind=kind, template_id="drake", status=status, user_id=owner)


def stream(api: str, channels: str) -> str:
    return f"{api}/api/feed/stream?channels={channels}"


@pytest.mark.services
async def test_sse_refuses_anonymous_and_other_users(
    api: str, people: dict[str, dict[str, Any]]
) -> None:
    ann = people["ann"]
    async with httpx.AsyncClient(timeout=10) as client:
        anonymous = await client.get(stream(api, f"new,user:{ann['id']}"))
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        assert anonymous.json()["type"].endswith("/unauthorized")
        other = await client.get(stream(api, f"user:{ann['id']}"), headers=people["bob"]["headers"])
        assert other.status_code == 403
        assert other.json()["type"].endswith("/forbidden")
        review = await client.get(stream(api, REVIEW), headers=ann["headers"])
        assert review.status_code == 403
        bad_key = await client.get(
            stream(api, f"user:{ann['id']}"), headers={"X-API-Key": "msk_not-a-key"}
        )
        assert bad_key.status_code == 401


@pytest.mark.services
async def test_sse_held_back_meme_reaches_owner_and_admins_only(
    api: str, topic: str, stack_settings: Settings, people: dict[str, dict[str, Any]]
) -> None:
    ann, admin = people["ann"], people["admin"]
    flagged = held(ann["id"])
    public = rendered(user_id=ann["id"])  # after the flagged one: the public feed's marker
    readers = {
        "owner": collect(stream(api, f"user:{ann['id']}"), until=2, headers=ann["headers"]),
        "admin-user": collect(stream(api, f"user:{ann['id']}"), until=2, headers=admin["headers"]),
        "admin-review": collect(stream(api, REVIEW), until=1, headers=admin["headers"]),
        "new": collect(stream(api, NEW), until=1),
        "room": collect(stream(api, f"meme:{flagged.meme_id},meme:{public.meme_id}"), until=1),
    }
    tasks = {name: asyncio.create_task(reader) for name, reader in readers.items()}
    await asyncio.sleep(1.0)
    await produce(stack_settings, topic, [flagged])
    await produce(stack_settings, topic, [public])
    got = {name: [orjson.loads(e.data)["meme_id"] for e in await t] for name, t in tasks.items()}
    assert got["owner"] == [flagged.meme_id, public.meme_id]
    assert got["admin-user"] == [flagged.meme_id, public.meme_id]
    assert got["admin-review"] == [flagged.meme_id]
    assert got["new"] == [public.meme_id]  # the flagged meme, produced first, never came
    assert got["room"] == [public.meme_id]


@asynccontextmanager
async def socket(api: str, headers: dict[str, str], deflate: bool) -> AsyncIterator[Any]:
    url = api.replace("http://", "ws://") + "/api/feed/ws"
    compression = "deflate" if deflate else None
    async with websockets.connect(url, additional_headers=headers, compression=compression) as ws:
        yield ws


async def frame_of(ws: Any, kind: str, wait_s: float = 15.0) -> dict[str, Any]:
    async with asyncio.timeout(wait_s):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame


@pytest.mark.services
@pytest.mark.parametrize("deflate", [False, True], ids=["direct", "asgi"])
@pytest.mark.parametrize(
    ("who", "channel", "error"),
    [
        (None, "user:ann", "unauthorized"),
        ("bob", "user:ann", "forbidden"),
        ("ann", REVIEW, "forbidden"),
    ],
)
async def test_ws_refusal_closes_with_policy_violation(
    api: str,
    people: dict[str, dict[str, Any]],
    deflate: bool,
    who: str | None,
    channel: str,
    error: str,
) -> None:
    headers = people[who]["headers"] if who else {}
    channel = channel.replace("ann", people["ann"]["id"])
    async with socket(api, headers, deflate) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channels": [NEW, channel], "ref": "s"}))
        refusal = await frame_of(ws, "error")
        assert refusal["ref"] == "s" and refusal["error"] == error
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await frame_of(ws, "subscribed")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


@pytest.mark.services
@pytest.mark.parametrize("deflate", [False, True], ids=["direct", "asgi"])
async def test_ws_held_back_meme_reaches_owner_and_admins_only(
    api: str, topic: str, stack_settings: Settings, people: dict[str, dict[str, Any]], deflate: bool
) -> None:
    ann, admin = people["ann"], people["admin"]
    async with (
        socket(api, ann["headers"], deflate) as owner,
        socket(api, admin["headers"], deflate) as moderator,
        socket(api, {}, deflate) as anonymous,
    ):
        for ws, channels in (
            (owner, [f"user:{ann['id']}"]),
            (moderator, [REVIEW, f"user:{ann['id']}"]),
            (anonymous, [NEW]),
        ):
            await ws.send(json.dumps({"type": "subscribe", "channels": channels}))
            await frame_of(ws, "subscribed")
        rejected = held(ann["id"], "rejected")
        public = rendered(user_id=ann["id"])
        await produce(stack_settings, topic, [rejected])
        await produce(stack_settings, topic, [public])
        for ws in (owner, moderator):
            first, second = (await frame_of(ws, "event"), await frame_of(ws, "event"))
            assert [first["data"]["meme_id"], second["data"]["meme_id"]] == [
                rejected.meme_id,
                public.meme_id,
            ]
        assert (await frame_of(anonymous, "event"))["data"]["meme_id"] == public.meme_id
