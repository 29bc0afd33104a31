"""A body-size limit enforced while the body streams in, not after it is buffered.

JSON bodies get MAX_BODY_BYTES; image uploads (multipart to `UPLOAD_ROUTES`) get
MAX_UPLOAD_BYTES, as large as the rendering engine decodes, so 10 MB+ images are accepted
without letting every JSON route take 25 MiB bodies.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON, TYPE_BASE

#: (method, path) of the routes that take an image as multipart/form-data.
UPLOAD_ROUTES = frozenset({("POST", "/api/templates"), ("POST", "/api/templates/suggest")})
#: Room for the multipart framing and the form fields around a file of MAX_UPLOAD_BYTES
#: (a template's `boxes` field alone may be 20,000 characters).
MULTIPART_OVERHEAD = 64 * 1024


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, upload_max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes

    def limit_for(self, scope: Scope) -> tuple[int, str]:
        """The byte limit of this request's body and the setting it comes from."""
        if (scope.get("method"), scope["path"]) in UPLOAD_ROUTES:
            content_type = dict(scope["headers"]).get(b"content-type", b"")
            if content_type.lower().startswith(b"multipart/form-data"):
                return self.upload_max_bytes + MULTIPART_OVERHEAD, "MAX_UPLOAD_BYTES"
        return self.max_bytes, "MAX_BODY_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.limit_for(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit, setting)
            return
        seen = 0
        started = rejected = False

        async def limited_receive() -> Message:
            nonlocal seen, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Answer now; the app sees a disconnected client and its reply is dropped.
                    rejected = True
                    if not started:
                        await self._reject(send, limit, setting)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _reject(self, send: Send, limit: int, setting: str) -> None:
        body = json.dumps(
            {
                "type": TYPE_BASE + "payload-too-large",
                "title": "The request body is too large",
                "status": 413,
                "detail": f"at most {limit} bytes are accepted ({setting})",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
