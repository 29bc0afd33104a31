"""WebSocket feed against real Kafka and Redis: subscribe/resume, ping/pong, votes with
acknowledgement (through the accounts vote path), presence and shared-draft merging."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
from pycrdt import Doc, Map
from websockets.asyncio.client import ClientConnection

from domain.ids import new_id
from domain.settings import Settings
from tests.feed_support import feed_api, private_topic, produce, rendered

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def topic(stack_settings: Settings) -> Iterator[str]:
    with private_topic(stack_settings) as name:
        yield name


@pytest.fixture(scope="module")
def api(stack_settings: Settings, topic: str) -> Iterator[str]:
    env = {"FEED_TOPIC": topic, "FEED_HISTORY_SIZE": "50", "FEED_PRESENCE_TTL_S": "6"}
    with feed_api(stack_settings, "api-feed-ws", **env) as url:
        yield url


class Peer:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.n = 0

    async def send(self, **frame: Any) -> str:
        self.n += 1
        ref = f"r{self.n}"
        await self.ws.send(json.dumps({**frame, "ref": ref}))
        return ref

    async def expect(self, kind: str, wait_s: float = 15.0, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(wait_s):
            while True:
                frame = json.loads(await self.ws.recv())
                if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame


@asynccontextmanager
async def peer(api: str, *, deflate: bool = True, **headers: str) -> AsyncIterator[Peer]:
    """deflate=False: no permessage-deflate, so the hub writes this socket directly."""
    url = api.replace("http://", "ws://") + "/api/feed/ws"
    compression = "deflate" if deflate else None
    async with websockets.connect(url, additional_headers=headers, compression=compression) as ws:
        yield Peer(ws)


@pytest.mark.parametrize("deflate", [False, True], ids=["direct", "asgi"])
async def test_subscribe_receive_and_resume(
    api: str, topic: str, stack_settings: Settings, deflate: bool
) -> None:
    async with peer(api, deflate=deflate) as a:
        ref = await a.send(type="subscribe", channels=["new"])
        subscribed = await a.expect("subscribed", ref=ref)
        cursor = subscribed["cursor"]
        first = rendered()
        await produce(stack_settings, topic, [first])
        event = await a.expect("event")
        assert event["data"]["meme_id"] == first.meme_id and event["id"].startswith("k:")
        ref = await a.send(type="ping", ts=123)
        pong = await a.expect("pong", ref=ref)
        assert pong["ts"] == 123 and pong["cursor"] == event["id"]
    missed = rendered()
    await produce(stack_settings, topic, [missed])
    async with peer(api) as b:
        await b.send(type="subscribe", channels=["new"], last_event_id=cursor)
        got = [(await b.expect("event"))["data"]["meme_id"] for _ in range(2)]
        assert sorted(got) == sorted([first.meme_id, missed.meme_id])
        await b.send(type="subscribe", channels=["trending"], last_event_id="k:999999")
        await b.expect("reload", reason="gap-too-old")
        ref = await b.send(type="subscribe", channels=["nope"])
        await b.expect("error", ref=ref)


async def test_presence_counts_viewers_and_expires(api: str) -> None:
    room = f"meme:{new_id()}"
    async with peer(api, deflate=False) as a, peer(api) as b:
        await a.send(type="subscribe", channels=[room])
        await a.expect("presence", room=room, count=1)
        await b.send(type="subscribe", channels=[room])
        await a.expect("presence", room=room, count=2)
        await b.expect("presence", room=room, count=2)
        await b.ws.close()
        await a.expect("presence", room=room, count=1)
        ref = await a.send(type="presence", room=room)
        assert (await a.expect("presence", ref=ref))["count"] == 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_draft_edits_merge_and_reach_the_room(api: str) -> None:
    """Shared drafts are Yjs documents the server merges (api/feed/drafts.py)."""
    draft = f"d{uuid.uuid4().hex[:12]}"
    async with peer(api, deflate=False) as a, peer(api) as b:
        for p in (a, b):
            ref = await p.send(type="draft.join", draft=draft)
            snapshot = await p.expect("draft", ref=ref)
            assert snapshot["snapshot"] is True and snapshot["version"] == 0
        # Concurrent edits of different fields: both survive.
        top, bottom = Doc(), Doc()
        top.get("draft", type=Map)["box.0.text"] = "top"
        bottom.get("draft", type=Map)["box.1.text"] = "bottom"
        await asyncio.gather(
            a.send(type="draft.update", draft=draft, update=_b64(top.get_update())),
            b.send(type="draft.update", draft=draft, update=_b64(bottom.get_update())),
        )
        seen = Doc()
        for _ in range(2):
            update = await a.expect("draft")
            seen.apply_update(base64.b64decode(update["update"]))
        assert seen.get("draft", type=Map).to_py() == {"box.0.text": "top", "box.1.text": "bottom"}
        # The same field, one after the other: the later write wins, at a higher version.
        top.apply_update(seen.get_update())
        top.get("draft", type=Map)["box.0.text"] = "first"
        ref = await a.send(type="draft.update", draft=draft, update=_b64(top.get_update()))
        v1 = (await a.expect("ack", ref=ref))["version"]
        top.get("draft", type=Map)["box.0.text"] = "second"
        ref = await b.send(type="draft.update", draft=draft, update=_b64(top.get_update()))
        v2 = (await b.expect("ack", ref=ref))["version"]
        assert v2 > v1
        async with peer(api) as c:
            ref = await c.send(type="draft.join", draft=draft)
            state = await c.expect("draft", ref=ref)
        assert state["version"] == v2
        late = Doc()
        late.apply_update(base64.b64decode(state["update"]))
        fields = late.get("draft", type=Map).to_py()
        assert fields == {"box.0.text": "second", "box.1.text": "bottom"}
        # Awareness (who edits which box) reaches the room as is.
        ref = await a.send(type="draft.awareness", draft=draft, update=_b64(b"\x01\x02"))
        assert (await b.expect("awareness", draft=draft))["update"] == _b64(b"\x01\x02")
        ref = await a.send(type="draft.update", draft=draft, update=_b64(b"\x05garbage"))
        assert (await a.expect("ack", ref=ref))["ok"] is False
        ref = await a.send(type="draft.update", draft="bad name!", update=_b64(top.get_update()))
        assert (await a.expect("ack", ref=ref))["ok"] is False


async def _rendered_meme(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/api/meme/generate", json={"template_id": "drake", "texts": ["ws", "votes"]}
    )
    assert response.status_code == 202, response.text
    meme_id = response.json()["meme_id"]
    async with asyncio.timeout(60):
        while True:
            if (await client.get(f"/api/meme/{meme_id}")).json().get("status") == "rendered":
                break
            await asyncio.sleep(0.2)
    return meme_id


@pytest.mark.e2e
async def test_votes_over_the_socket_are_acknowledged(api: str, render_worker: None) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=20) as client:
        meme_id = await _rendered_meme(client)
        user = f"ws{uuid.uuid4().hex[:10]}"
        creds = {"username": user, "password": "correct horse"}
        assert (await client.post("/api/auth/register", json=creds)).status_code == 201
        token = (await client.post("/api/auth/login", json=creds)).json()["token"]
    async with peer(api) as anonymous:
        ref = await anonymous.send(type="vote", meme_id=meme_id, value=1, vote_id=new_id())
        ack = await anonymous.expect("ack", ref=ref)
        assert ack == {
            "type": "ack",
            "ref": ref,
            "ok": False,
            "error": "login-required",
            "retry": False,
        }
    async with peer(api, Cookie=f"memestream_session={token}") as voter:
        ref = await voter.send(type="vote", meme_id=meme_id, value=1, vote_id=new_id())
        ack = await voter.expect("ack", ref=ref)
        assert ack["ok"] is True and ack["up"] == 1 and ack["score"] == 1
        ref = await voter.send(type="vote", meme_id=meme_id, value=-1)
        ack = await voter.expect("ack", ref=ref)
        assert ack["ok"] is True and (ack["up"], ack["down"], ack["previous"]) == (0, 1, 1)
        ref = await voter.send(type="vote", meme_id=new_id(), value=1)
        ack = await voter.expect("ack", ref=ref)
        assert ack["ok"] is False and ack["error"] == "meme-not-found"


async def test_votes_over_the_socket_share_the_rest_write_budget(
    stack_settings: Settings, topic: str, api: str, render_worker: None
) -> None:
    """A socket is no way around the vote endpoint's rate limit: the user's write budget
    counts socket votes too, and the refusal says when to retry."""
    async with httpx.AsyncClient(base_url=api, timeout=20) as client:
        meme_id = await _rendered_meme(client)
        creds = {"username": f"rl{uuid.uuid4().hex[:10]}", "password": "correct horse"}
        assert (await client.post("/api/auth/register", json=creds)).status_code == 201
        token = (await client.post("/api/auth/login", json=creds)).json()["token"]
    # An API with a budget of 3 writes a minute; the user is fresh, so their budget is whole.
    with feed_api(
        stack_settings, "api-feed-ws-limits", FEED_TOPIC=topic, RATE_LIMIT_WRITES_PER_MINUTE="3"
    ) as limited:
        async with peer(limited, Cookie=f"memestream_session={token}") as voter:
            acks = []
            for value in (1, -1, 1, -1):
                ref = await voter.send(type="vote", meme_id=meme_id, value=value)
                acks.append(await voter.expect("ack", ref=ref))
    assert [a["ok"] for a in acks] == [True, True, True, False]
    assert acks[3]["error"] == "rate-limited" and acks[3]["retry"] is True
    assert acks[3]["retry_after"] >= 1
