"""What a feed event looks like on the wire, encoded once and shared by every client.

Routing: every event goes to `meme:{id}`; rendered, failed and deleted memes also go to `new`;
trending moves to `trending`; a meme with an author also to `user:{id}`. Vote counts go to the
meme's channel and to `votes` (the feed page subscribes to it rather than to every card).
A meme moderation holds back (flagged or rejected) goes to no public channel, not even its own
`meme:{id}`: only to its owner's `user:{id}` and to `review`, the admins' channel (who may
follow which: api/feed/access.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from api.feed.framing import chunk, ws_frame
from domain.events import HELD_BACK, FeedEvent, FeedKind

NEW = "new"
TRENDING = "trending"
VOTES = "votes"
REVIEW = "review"
STATIC_CHANNELS = frozenset({NEW, TRENDING, VOTES, REVIEW})
ROOM_PREFIXES = ("meme:", "user:", "draft:")
MAX_CHANNEL_LENGTH = 100


def valid_channel(channel: str) -> bool:
    if channel in STATIC_CHANNELS:
        return True
    return (
        len(channel) <= MAX_CHANNEL_LENGTH
        and channel.startswith(ROOM_PREFIXES)
        and len(channel.partition(":")[2]) > 0
        and all(c.isalnum() or c in "-_" for c in channel.partition(":")[2])
    )


def channels_of(event: FeedEvent) -> tuple[str, ...]:
    if event.status in HELD_BACK:
        owner = (f"user:{event.user_id}",) if event.user_id else ()
        return (*owner, REVIEW)
    channels = [f"meme:{event.meme_id}"]
    if event.kind in (FeedKind.RENDERED, FeedKind.FAILED, FeedKind.DELETED):
        channels.append(NEW)
    elif event.kind is FeedKind.TRENDING:
        channels.append(TRENDING)
    elif event.kind is FeedKind.VOTES:
        channels.append(VOTES)
    if event.user_id:
        channels.append(f"user:{event.user_id}")
    return tuple(channels)


def event_body(event: FeedEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "kind": event.kind.value,
        "meme_id": event.meme_id,
        "template_id": event.template_id,
        "status": event.status,
        "score": event.score,
        "votes": event.votes,
        "user_id": event.user_id,
        "occurred_at": int(event.occurred_at.timestamp() * 1000),
    }


@dataclass(slots=True)
class Message:
    """One frame for every client: `sse` and `ws` are encoded lazily, once."""

    id: str | None
    channels: tuple[str, ...]
    body: dict[str, Any]
    kind: str = "event"
    _sse: bytes | None = None
    _ws: str | None = None
    _sse_chunk: bytes | None = None
    _ws_frame: bytes | None = None

    @property
    def sse(self) -> bytes:
        if self._sse is None and self.kind == "heartbeat":
            # An id-only event moves the browser's Last-Event-ID; the comment is for humans.
            self._sse = f"id: {self.id}\n: heartbeat\n\n".encode()
        if self._sse is None:
            data = orjson.dumps(self.body)
            head = f"id: {self.id}\n".encode() if self.id else b""
            event = b"" if self.kind == "event" else f"event: {self.kind}\n".encode()
            self._sse = head + event + b"data: " + data + b"\n\n"
        return self._sse

    @property
    def ws(self) -> str:
        if self._ws is None:
            frame: dict[str, Any] = {"type": self.kind}
            if self.kind == "event":
                frame["id"] = self.id
                frame["data"] = self.body
            else:  # presence, draft, heartbeat: the body's fields sit next to the type
                frame.update(self.body)
            self._ws = orjson.dumps(frame).decode()
        return self._ws

    @property
    def sse_chunk(self) -> bytes:
        """The SSE frame as one HTTP chunk, for direct writes (api/feed/direct.py)."""
        if self._sse_chunk is None:
            self._sse_chunk = chunk(self.sse)
        return self._sse_chunk

    @property
    def ws_frame(self) -> bytes:
        """The WebSocket text frame, for direct writes (api/feed/direct.py)."""
        if self._ws_frame is None:
            self._ws_frame = ws_frame(self.ws.encode())
        return self._ws_frame


def feed_message(cursor: str, event: FeedEvent) -> Message:
    return Message(cursor, channels_of(event), event_body(event))


def heartbeat(cursor: str) -> Message:
    """One frame for every client: the resume point as of now (nothing queued is after it)."""
    return Message(cursor, (), {"cursor": cursor}, kind="heartbeat")


def room_message(room: str, kind: str, body: dict[str, Any]) -> Message:
    """Presence and draft updates: ephemeral, no id, never in history."""
    return Message(None, (room,), body, kind=kind)
