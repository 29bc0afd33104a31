"""RED metrics and the request id of every HTTP request, as one pure ASGI middleware.

The metric objects live in `domain.metrics` (dashboards and alerts share that catalogue);
this middleware is the API's way of observing them, so it lives with the API.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.logs import REQUEST_ID_HEADER, bound_request_id, new_request_id
from domain.metrics import HTTP_IN_PROGRESS, observe_http


class HttpMetricsMiddleware:
    """Pure-ASGI RED metrics and request ids: one call per request, no middleware base class.

    The route label is the matched route's template (Starlette puts the route in the scope), or
    `unmatched`, so random paths never create new series. The request id comes from the
    `x-request-id` header or is made here, is bound for the request's logs, and is echoed back.
    """

    def __init__(self, app: ASGIApp, skip: tuple[str, ...] = ("/metrics",)) -> None:
        self.app = app
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("path") in self.skip:
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or ()).get(REQUEST_ID_HEADER.encode())
        request_id = raw.decode("latin-1")[:128] if raw else new_request_id()
        # Kept in the request's state too: the 500 handler runs outside this middleware.
        scope.setdefault("state", {})["request_id"] = request_id
        method = str(scope.get("method", "GET"))
        status = 500
        started = time.perf_counter()
        in_progress = HTTP_IN_PROGRESS.labels(method=method)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers") or [])
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        in_progress.inc()
        try:
            with bound_request_id(request_id):
                await self.app(scope, receive, send_wrapper)
        finally:
            in_progress.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            observe_http(method, str(template), status, time.perf_counter() - started)
