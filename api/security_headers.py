"""Security headers on every HTTP response, and a Content-Security-Policy on HTML pages.

- `X-Content-Type-Options: nosniff` everywhere: an uploaded or rendered image is never run as a
  script or page because a browser guessed its type;
- `X-Frame-Options: DENY` everywhere, and `frame-ancestors 'none'` in the pages' CSP: no other
  site frames the editor (clickjacking a vote or a delete);
- `Referrer-Policy: same-origin`: meme and draft ids in our URLs do not leak to other sites;
- on `text/html`: a CSP the static pages (api/static) work with, checked in Chromium by
  tests/browser: module scripts and styles from our origin only (no inline script or style
  element but the editor's import map, allowed by its hash: api/routes/vendor.py; the pages
  set positions through the CSSOM, which CSP allows), images also from `data:`/`blob:`
  (canvas previews, the empty icon), the filters worker from our origin, and
  fetch/EventSource/WebSocket to our origin only.

Pure ASGI, not BaseHTTPMiddleware (a task and a stream per request): this wraps `send` and
copies one header list per response; measured in isolation it adds 4-7 us per request, most of
it the `send` wrapper any such middleware needs (under 1 % of a core at 1,500 requests/s). The
feed's long-lived streams skip the middleware stack (api/routes/feed.py) and send `nosniff`
themselves (api/feed/sse.py).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.routes.vendor import IMPORT_MAP_HASH

CSP = (
    b"default-src 'self'; script-src 'self' '" + IMPORT_MAP_HASH.encode() + b"'; "
    b"style-src 'self'; img-src 'self' data: blob:; "
    b"worker-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; "
    b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ALWAYS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
HTML: list[tuple[bytes, bytes]] = [(b"content-security-policy", CSP)]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), *ALWAYS]
                for name, value in headers:
                    if name == b"content-type":
                        if value.startswith(b"text/html"):
                            headers.extend(HTML)
                        break
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
