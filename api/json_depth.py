"""A nesting limit on JSON (MAX_JSON_DEPTH, default 32), checked before anything parses it.

Python's parser and pydantic recurse once per level: 1,000 levels raise RecursionError inside
the parser and 1,500 inside validation, which answered 500 and reset the connection. The
deepest legal request is 4 levels (`{"items": [{"boxes": [{...}]}]}`), so a body or a JSON form
field deeper than the limit is refused with a 422 problem+json (`json-too-deep`) by a scan of
its brackets: strings are skipped whole by one regular expression (C speed), the brackets are
counted, and the scan stops at the first level past the limit. Bodies with fewer brackets
than the limit are not scanned at all.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON, TYPE_BASE

#: A JSON string, escapes included (an unterminated one is left alone: the parser refuses it).
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
#: Every byte that is not a bracket, for `bytes.translate` to delete; braces become brackets
#: (depth does not care which kind), so an innermost pair is always `[]`.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class JsonTooDeep(ValueError):
    """JSON nested deeper than the limit."""


def too_deep(raw: bytes | str, limit: int) -> bool:
    """Whether `raw` (JSON text, valid or not) nests arrays and objects deeper than `limit`.

    Strings are cut out and everything but brackets deleted; each pass then removes the
    innermost pairs, one level, so what is left after `limit` passes is deeper than `limit`.
    All of it runs in C: 1 MB of brackets takes milliseconds.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    brackets = _STRINGS.sub(b"", data).translate(_AS_BRACKETS, _NOT_BRACKETS)
    for _ in range(limit):
        fewer = brackets.replace(b"[]", b"")  # one pass of C, not re-scanned: one level
        if len(fewer) == len(brackets):
            break
        brackets = fewer
    # Depth <= limit leaves only unmatched brackets: closers, then openers never closed.
    start = brackets.find(b"[")
    if start < 0:
        return False
    rest = brackets[start:]
    return b"]" in rest or len(rest) > limit


def loads(raw: str | bytes, limit: int) -> Any:
    """`json.loads` of a JSON form field, refusing nesting deeper than `limit` first."""
    if too_deep(raw, limit):
        raise JsonTooDeep(f"JSON nested deeper than {limit} levels (MAX_JSON_DEPTH)")
    return json.loads(raw)


def _is_json(scope: Scope) -> bool:
    """Bodies FastAPI would parse as JSON: a JSON media type, or none at all."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True


class JsonDepthLimit:
    """ASGI middleware: buffers JSON bodies (already bounded by MAX_BODY_BYTES, the outer
    middleware), refuses one nested deeper than `max_depth`, and replays the rest."""

    def __init__(self, app: ASGIApp, max_depth: int) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # disconnected, or refused as too large
                await self.app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if too_deep(body, self.max_depth):
            await _refuse(scope, send, self.max_depth)
            return
        await self.app(scope, _replay([body], None, receive), send)


def _replay(bodies: list[bytes], last: Message | None, receive: Receive) -> Receive:
    """A receive that hands out the buffered body, then the original stream's messages."""
    pending: list[Message] = [
        {"type": "http.request", "body": b, "more_body": False} for b in bodies
    ]
    if last is not None:
        pending.append(last)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": TYPE_BASE + "json-too-deep",
            "title": "The JSON is nested too deeply",
            "status": 422,
            "detail": f"at most {limit} levels of arrays and objects (MAX_JSON_DEPTH)",
            "instance": scope["path"],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
