"""One WebSocket connection's protocol: JSON text frames, every reply through the mailbox so
replies and feed events reach the client in the order they happened.

Client -> server (`ref` is echoed in the reply):
  {"type":"hello","user_id":"anon-..."}                        -> {"type":"welcome",...}
  {"type":"subscribe","channels":[...],"last_event_id":"k:..."} -> {"type":"subscribed",...}
      then missed events, or {"type":"reload","reason":"gap-too-old"}
  {"type":"unsubscribe","channels":[...]}                      -> {"type":"unsubscribed",...}
  {"type":"ping","ts":...}                                     -> {"type":"pong","ts":...,"cursor"}
  {"type":"vote","meme_id":...,"value":1,"vote_id":uuid}       -> {"type":"ack","ok":true|false}
      (the API's one vote path, api/votes.py: an account from the handshake, the write
      budget, PostgreSQL then the outbox; `vote_id` is echoed so a client matches acks)
  {"type":"presence","room":"meme:..."}                        -> {"type":"presence","count":n}
  {"type":"draft.join","draft":id,"sv":b64}  -> joins room draft:<id>, {"type":"draft",
      "snapshot":true,"update":b64,"sv":b64}: what the joiner lacks and the server's state
      vector, so the joiner sends what the server lacks (a Yjs sync, api/feed/drafts.py)
  {"type":"draft.update","draft":id,"update":b64} -> ack with version; room gets "draft"
  {"type":"draft.awareness","draft":id,"update":b64} -> room gets "awareness" (not stored)
A `subscribe` to a channel the caller may not follow (api/feed/access.py: `user:<id>` of someone
else, `review` without the admin role; the caller is the handshake's cookie, Bearer token or
X-API-Key) is answered {"type":"error","error":"unauthorized"|"forbidden",...} and the
connection is closed with 1008 (policy violation): a client that asks for another user's
memes is misbehaving, not retrying.
Server -> client, unprompted: {"type":"event","id":...,"data":{...}}, {"type":"presence"},
  {"type":"draft"}, {"type":"awareness"}, {"type":"heartbeat","cursor":...},
  {"type":"close","reason":...}.

Metrics: the connection counts in `memestream_live_connections{transport="websocket"}` from
accept to close; feed events the send loop writes are timed in
`memestream_feed_delivery_seconds{transport="websocket"}` (direct writes: by the hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.feed import access, drafts
from api.feed.cursor import BadCursor, Cursor
from api.feed.direct import GRACE_S, WS, DirectWriter
from api.feed.drafts import DraftError
from api.feed.history import GapTooOld
from api.feed.hub import Client, Frame
from api.feed.messages import Message, valid_channel
from api.feed.presence import is_presence_room
from api.feed.relay import FeedRelay
from api.feed.sse import observe_delivered
from api.problems import Problem
from api.uvicorn_compat import ws_transport
from domain.metrics import FEED_DELIVERY_LATENCY, LIVE_CONNECTIONS, live_connection
from sinks.redis.client import REDIS_ERRORS

log = logging.getLogger(__name__)
MAX_FRAME = 64 * 1024
MAX_CHANNELS = 200
POLICY_VIOLATION = 1008
REFUSALS = ("unauthorized", "forbidden")
CLOSE_CODES = {
    "slow-consumer": 4008,
    "server-shutdown": 1012,
    **dict.fromkeys(REFUSALS, POLICY_VIOLATION),
}
TRANSPORT = "websocket"
# Created at import: an idle replica exports 0 connections (the HPA needs the series).
LIVE_CONNECTIONS.labels(transport=TRANSPORT)
FEED_DELIVERY_LATENCY.labels(transport=TRANSPORT)


#: Casts a vote frame and returns the ack's fields: the API's one vote path (api/votes.py).
Voter = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ProtocolError(ValueError):
    pass


class Refused(Exception):
    """A channel the caller may not follow: the connection ends (policy violation)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail or problem.title)
        self.reason = problem.slug


class WsSession:
    def __init__(
        self,
        relay: FeedRelay,
        websocket: WebSocket,
        client: Client,
        voter: Voter | None = None,
        caller: access.Caller | None = None,
    ) -> None:
        self.relay = relay
        self.voter = voter
        self.caller = caller
        self.hub = relay.hub
        self.websocket = websocket
        self.client = client
        self.user_id: str | None = None

    def reply(self, frame: dict[str, Any]) -> None:
        self.control(orjson.dumps(frame).decode())

    def control(self, frame: Frame) -> None:
        """A reply or a replayed event: in order with the live events around it."""
        client = self.client
        if client.writer is None:
            client.mailbox.put_control(frame)
        elif not client.writer(frame):
            self.hub.drop_slow(client)

    async def send_loop(self) -> None:
        mailbox = self.client.mailbox
        send = self.websocket.send_text
        while True:
            batch: list[Frame] = await mailbox.get_batch()
            if mailbox.closed is not None:
                if mailbox.closed in REFUSALS:  # the error frame saying why goes first
                    for frame in mailbox.take_all():
                        await send(frame.ws if isinstance(frame, Message) else frame)
                code = CLOSE_CODES.get(mailbox.closed)
                if code is not None:
                    await self.websocket.close(code=code, reason=mailbox.closed)
                return
            for frame in batch:
                await send(frame.ws if isinstance(frame, Message) else frame)
            observe_delivered(batch, TRANSPORT)

    async def receive_loop(self) -> None:
        while True:
            # One call per frame: the frame and its parsed dict are freed before the next
            # wait, instead of staying alive in this loop's frame between messages.
            await self.receive_frame(await self.websocket.receive_text())

    async def receive_frame(self, raw: str) -> None:
        ref = None
        try:
            if len(raw) > MAX_FRAME:
                raise ProtocolError(f"frames are at most {MAX_FRAME} bytes")
            try:
                frame = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ProtocolError("frames are JSON objects") from exc
            if not isinstance(frame, dict):
                raise ProtocolError("frames are JSON objects")
            ref = frame.get("ref")
            await self.handle(frame, ref)
        except ProtocolError as exc:
            self.reply({"type": "error", "ref": ref, "error": str(exc)})
        except Refused as exc:
            self.reply({"type": "error", "ref": ref, "error": exc.reason, "detail": str(exc)})
            raise

    async def handle(self, frame: dict[str, Any], ref: object) -> None:
        match frame.get("type"):
            case "hello":
                user_id = frame.get("user_id")
                if user_id is not None and not isinstance(user_id, str):
                    raise ProtocolError("user_id is a string")
                self.user_id = user_id
                self.reply(
                    {
                        "type": "welcome",
                        "ref": ref,
                        "client": self.client.id,
                        "cursor": str(self.hub.cursor),
                    }
                )
            case "subscribe":
                channels = self.channels(frame)
                try:
                    access.check(channels, self.caller)
                except Problem as problem:
                    raise Refused(problem) from None
                self.subscribe(channels, frame.get("last_event_id"), ref)
            case "unsubscribe":
                channels = self.channels(frame)
                self.hub.unsubscribe(self.client, channels)
                self.reply({"type": "unsubscribed", "ref": ref, "channels": channels})
            case "ping":
                self.reply(
                    {
                        "type": "pong",
                        "ref": ref,
                        "ts": frame.get("ts"),
                        "cursor": str(self.hub.cursor),
                    }
                )
            case "vote":
                await self.vote(frame, ref)
            case "presence":
                room = frame.get("room")
                if not isinstance(room, str) or not is_presence_room(room):
                    raise ProtocolError("room is a meme:<id> or draft:<id> channel")
                count = await self.redis_call(self.relay.presence.count(room), ref)
                if count is not None:
                    self.reply({"type": "presence", "ref": ref, "room": room, "count": count})
            case "draft.join":
                await self.draft_join(frame, ref)
            case "draft.update":
                await self.draft_update(frame, ref)
            case "draft.awareness":
                await self.draft_awareness(frame, ref)
            case other:
                raise ProtocolError(f"unknown frame type {other!r}")

    def channels(self, frame: dict[str, Any]) -> list[str]:
        channels = frame.get("channels")
        if (
            not isinstance(channels, list)
            or not channels
            or len(channels) > MAX_CHANNELS
            or not all(isinstance(c, str) and valid_channel(c) for c in channels)
        ):
            raise ProtocolError(
                "channels: 1-200 of new, trending, votes, review, meme:<id>, user:<id>, draft:<id>"
            )
        return channels

    def subscribe(self, channels: list[str], last_event_id: object, ref: object) -> None:
        """Replay and subscribe without an await between them: no event can fall in between."""
        missed: list[Message] = []
        reload = False
        if last_event_id is not None:
            try:
                missed = self.hub.replay(
                    self.client, Cursor.parse(str(last_event_id)), set(channels)
                )
            except (GapTooOld, BadCursor):
                reload = True
        self.hub.subscribe(self.client, channels)
        self.reply(
            {
                "type": "subscribed",
                "ref": ref,
                "channels": channels,
                "cursor": str(self.hub.cursor),
                "replayed": len(missed),
            }
        )
        if reload:
            self.reply({"type": "reload", "reason": "gap-too-old", "cursor": str(self.hub.cursor)})
        for message in missed:
            # As text (the same bytes on the wire): a replay is not a live delivery to time.
            self.control(message.ws)

    async def vote(self, frame: dict[str, Any], ref: object) -> None:
        if self.voter is None:  # no data layer in this process: votes cannot be stored
            result: dict[str, Any] = {"ok": False, "error": "votes-unavailable", "retry": True}
        else:
            result = await self.voter(frame)
        self.reply({"type": "ack", "ref": ref, **result})

    async def draft_join(self, frame: dict[str, Any], ref: object) -> None:
        """Sync step 1 and 2 in one reply: what the joiner lacks and the server's state vector."""
        try:
            draft_id = drafts.check_id(frame.get("draft"))
            sv = frame.get("sv")
            vector = drafts.decode(sv, drafts.MAX_UPDATE_BYTES, "sv") if sv else None
            # Into the room first: an update stored after the state is read still reaches
            # the joiner (twice at worst, and Yjs applies an update once).
            self.hub.subscribe(self.client, [f"draft:{draft_id}"])
            sync = await self.redis_call(self.relay.drafts.sync(draft_id, vector), ref)
        except DraftError as exc:
            raise ProtocolError(str(exc)) from exc
        if sync is None:
            return
        self.reply(
            {
                "type": "draft",
                "ref": ref,
                "snapshot": True,
                "draft": draft_id,
                "version": sync.version,
                "update": drafts.encode(sync.update),
                "sv": drafts.encode(sync.state_vector),
            }
        )

    async def draft_update(self, frame: dict[str, Any], ref: object) -> None:
        """Merges a Yjs update into the stored draft, then relays it to the room."""
        payload = frame.get("update")
        try:
            draft_id = drafts.check_id(frame.get("draft"))
            update = drafts.decode(payload, drafts.MAX_UPDATE_BYTES, "update")
            version = await self.redis_call(self.relay.drafts.apply(draft_id, update), ref)
        except DraftError as exc:
            self.reply({"type": "ack", "ref": ref, "ok": False, "error": str(exc), "retry": False})
            return
        if version is None:
            return
        self.reply({"type": "ack", "ref": ref, "ok": True, "draft": draft_id, "version": version})
        body = {"draft": draft_id, "update": payload, "version": version, "by": self.client.id}
        await self.relay.rooms.publish(f"draft:{draft_id}", "draft", body)

    async def draft_awareness(self, frame: dict[str, Any], ref: object) -> None:
        """Who edits which box: relayed to the room as is, never stored (it expires)."""
        payload = frame.get("update")
        try:
            draft_id = drafts.check_id(frame.get("draft"))
            drafts.decode(payload, drafts.MAX_AWARENESS_BYTES, "update")
        except DraftError as exc:
            raise ProtocolError(str(exc)) from exc
        body = {"draft": draft_id, "update": payload, "by": self.client.id}
        await self.relay.rooms.publish(f"draft:{draft_id}", "awareness", body)

    async def redis_call(self, call: Any, ref: object) -> Any:
        try:
            return await call
        except REDIS_ERRORS:
            self.reply(
                {
                    "type": "ack",
                    "ref": ref,
                    "ok": False,
                    "error": "redis-unavailable",
                    "retry": True,
                }
            )
            return None


async def serve(
    relay: FeedRelay,
    websocket: WebSocket,
    voter: Voter | None = None,
    raw_send: Any = None,
    caller: access.Caller | None = None,
) -> None:
    """Runs a connection until either side closes it.

    With uvicorn's own `send` (`raw_send`, from FeedFastPath) and no compression extension,
    the hub writes frames straight to the socket and this task only reads; otherwise a second
    task drains the client's mailbox through ASGI.
    """
    await websocket.accept()
    with live_connection(TRANSPORT):
        await _run(relay, websocket, voter, raw_send, caller)


async def _run(
    relay: FeedRelay,
    websocket: WebSocket,
    voter: Voter | None,
    raw_send: Any,
    caller: access.Caller | None,
) -> None:
    """One accepted connection, from `hub.connect` to `hub.disconnect`."""
    hub = relay.hub
    client = hub.connect()
    session = WsSession(relay, websocket, client, voter, caller)
    transport = ws_transport(raw_send) if raw_send is not None else None
    sender = None
    if transport is not None:
        hub.go_direct(client, DirectWriter(WS, transport, relay.direct_limit))
    else:
        sender = asyncio.create_task(session.send_loop())
    try:
        await session.receive_loop()
    except WebSocketDisconnect:
        pass
    except Refused as refused:
        # The hub closes the connection (after the error frame) with 1008; wait for the peer.
        hub.disconnect(client, refused.reason)
        await _until_gone(websocket)
    except asyncio.CancelledError:
        if not client.killed:
            raise
        # A stalled slow consumer: our own cancellation, the connection just goes away.
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
    finally:
        hub.disconnect(client)
        if sender is not None:
            sender.cancel()


async def _until_gone(websocket: WebSocket) -> None:
    """Reads (and ignores) until the peer is gone, for at most the grace period."""
    with contextlib.suppress(TimeoutError, RuntimeError, WebSocketDisconnect):
        async with asyncio.timeout(GRACE_S):
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
