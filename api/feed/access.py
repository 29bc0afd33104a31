"""Who may follow which feed channel: one rule for SSE and WebSocket.

`new`, `trending`, `votes`, `meme:<id>` and `draft:<id>` are public: what they carry is public
anyway (held-back memes never reach them, api/feed/messages.py). `user:<id>` carries that
user's own memes, moderation's flagged and rejected ones included, so only that user (a session
or an API key, as the rest of the API authenticates) or an admin may follow it. `review` carries
every held-back meme and is for admins only. Anonymous callers get 401, others 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from api.feed.messages import REVIEW
from api.problems import Problem

USER_PREFIX = "user:"


class Caller(Protocol):
    """What the rule needs of api.auth.Principal (not imported: api.auth needs the feed)."""

    @property
    def user_id(self) -> str | None: ...

    @property
    def is_admin(self) -> bool: ...


def restricted(channel: str) -> bool:
    return channel == REVIEW or channel.startswith(USER_PREFIX)


def needs_caller(channels: Iterable[str]) -> bool:
    """Whether resolving the caller is needed at all: public channels cost no lookup."""
    return any(restricted(c) for c in channels)


def may_follow(channel: str, caller: Caller | None) -> bool:
    if not restricted(channel):
        return True
    if caller is None or caller.user_id is None:
        return False
    if caller.is_admin:
        return True
    return channel == f"{USER_PREFIX}{caller.user_id}"


def check(channels: Iterable[str], caller: Caller | None) -> None:
    """Raises 401 (nobody logged in) or 403 (someone else's channel) for the first refusal."""
    refused = [c for c in channels if not may_follow(c, caller)]
    if not refused:
        return
    if caller is None or caller.user_id is None:
        raise Problem(
            401,
            "unauthorized",
            "Authentication required",
            f"log in or send an API key to follow {refused[0]}",
            headers={"WWW-Authenticate": 'Bearer realm="memestream"'},
        )
    raise Problem(
        403,
        "forbidden",
        "Not your channel",
        f"{refused[0]} is only for its user and admins"
        if refused[0].startswith(USER_PREFIX)
        else f"{refused[0]} is for admins only",
    )
