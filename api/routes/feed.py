"""The live feed over SSE (`GET /api/feed/stream`) and WebSocket (`/api/feed/ws`).

Channels: `new` (rendered, failed and deleted memes), `trending`, `votes` (vote counts of every
meme), `meme:<id>`, `user:<id>` (that user or an admin), `review` (admins: moderation's held-back
memes); WebSocket also `draft:<id>`. Who may follow what: api/feed/access.py. SSE answers a
refused channel with 401/403 problem+json; a WebSocket `subscribe` to one gets an `error` frame
(`unauthorized` or `forbidden`) and the connection is closed with 1008 (policy violation).

Event ids are log positions (see api/feed/cursor.py), so `Last-Event-ID` resumes on any replica
and after restarts while the bounded history still holds the gap; when it does not, the client
gets a `reload` event (and a fresh id) and must refetch what it shows: events are never skipped
silently.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Header, Query, Request, WebSocket
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import SESSION_COOKIE, Principal, _resolve, _token
from api.data_layer import DataLayer
from api.dependencies import Services
from api.feed import FeedRelay, access
from api.feed.cursor import BadCursor, Cursor
from api.feed.history import GapTooOld
from api.feed.messages import NEW, valid_channel
from api.feed.sse import EventStream, control_frame
from api.feed.ws_session import serve
from api.problems import Problem, problem_response, problem_responses, unavailable
from api.votes import socket_voter

router = APIRouter(prefix="/api/feed", tags=["feed"])
MAX_CHANNELS = 50
STREAM_PATH = "/api/feed/stream"
WS_PATH = "/api/feed/ws"


def relay_of(app: Any) -> FeedRelay:
    relay: FeedRelay | None = getattr(app.state.services, "feed", None)
    if relay is None:
        raise Problem(503, "feed-unavailable", "The live feed is not running")
    return relay


def parse_channels(raw: str) -> list[str]:
    channels = [c.strip() for c in raw.split(",") if c.strip()]
    bad = [c for c in channels if not valid_channel(c) or c.startswith("draft:")]
    if not channels or len(channels) > MAX_CHANNELS or bad:
        raise Problem(
            422,
            "bad-channels",
            "Unknown or malformed channels",
            f"1-{MAX_CHANNELS} of new, trending, votes, review, meme:<id>, user:<id>;"
            f" bad: {bad[:5]}",
        )
    return channels


async def sse_principal(request: Request, services: Services) -> Principal:
    """The caller of a stream, as the rest of the API resolves it (api/auth.py).

    A cookie counts without an Origin check: an EventSource from another site sends it only with
    `withCredentials`, and the API grants no CORS, so that page cannot read the stream.
    """
    if services.data is None:
        raise unavailable("data layer")
    ip = request.client.host if request.client else "unknown"
    token = _token(request)
    return await _resolve(token, services.data, ip) if token else Principal(ip)


async def open_stream(
    services: Services, request: Request, channels: str, resume: str | None
) -> EventStream:
    """Checks who may follow the channels (only a restricted one costs a lookup), then opens."""
    wanted = parse_channels(channels)
    if access.needs_caller(wanted):
        access.check(wanted, await sse_principal(request, services))
    relay = services.feed
    if relay is None:
        raise Problem(503, "feed-unavailable", "The live feed is not running")
    hub = relay.hub
    preamble = [f"retry: {relay.settings.feed_retry_ms}\n\n".encode()]
    client = hub.connect()
    missed = []
    if resume:
        try:
            missed = hub.replay(client, Cursor.parse(resume), set(wanted))
        except (GapTooOld, BadCursor):
            body = {"reason": "gap-too-old", "last_event_id": resume[:200]}
            preamble.append(control_frame("reload", body, str(hub.cursor)))
    hub.subscribe(client, wanted)
    hello = {"channels": wanted, "cursor": str(hub.cursor), "replayed": len(missed)}
    preamble.append(control_frame("hello", hello, None if missed else str(hub.cursor)))
    preamble.extend(m.sse for m in missed)
    return EventStream(hub, client, b"".join(preamble), relay.direct_limit)


@router.get(
    "/stream",
    summary="Server-sent events of the live feed",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        **problem_responses(
            401,
            403,
            422,
            503,
            descriptions={
                401: "A `user:<id>` or `review` channel without a valid credential",
                403: "Another user's channel, or `review` without the admin role",
                422: "Unknown or malformed channels",
                503: "The live feed is not running",
            },
        ),
    },
)
async def stream(
    request: Request,
    channels: Annotated[str, Query(description="comma-separated channels")] = NEW,
    last_event_id: Annotated[
        str | None, Query(description="resume point when the header cannot be set")
    ] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    services: Services = request.app.state.services
    return await open_stream(services, request, channels, last_event_id_header or last_event_id)


async def principal_of(websocket: WebSocket, data: DataLayer) -> Principal | None:
    """Who votes and follows: the page's session cookie, or `Authorization: Bearer` or
    `X-API-Key` from other clients.

    A cookie only counts when the handshake comes from our own origin (a browser always sends
    Origin), so another site cannot vote with a visitor's session (cross-site WebSocket
    hijacking). No token in the query string: URLs end up in access logs.
    """
    headers = websocket.headers
    token = None
    scheme, _, bearer = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and bearer:
        token = bearer.strip()
    elif headers.get("x-api-key"):
        token = headers["x-api-key"]
    elif SESSION_COOKIE in websocket.cookies:
        origin = headers.get("origin")
        if origin is None or urlsplit(origin).netloc == headers.get("host"):
            token = websocket.cookies[SESSION_COOKIE]
    if not token:
        return None
    ip = websocket.client.host if websocket.client else "unknown"
    try:
        return await _resolve(token, data, ip)
    except Problem:
        return None


async def serve_socket(services: Services, websocket: WebSocket, raw_send: Any = None) -> None:
    if services.feed is None:
        raise Problem(503, "feed-unavailable", "The live feed is not running")
    voter = None
    principal = None
    if services.data is not None:
        principal = await principal_of(websocket, services.data)
        voter = socket_voter(services, principal)
    await serve(services.feed, websocket, voter, raw_send, principal)


@router.websocket("/ws")
async def websocket(websocket: WebSocket) -> None:
    await serve_socket(websocket.app.state.services, websocket)


class FeedFastPath:
    """Serves the two long-lived feed endpoints ahead of the whole middleware stack.

    `install_fast_path` wraps the app's built middleware stack, so this receives the server's
    own `send` (what lets the hub write sockets directly, api/feed/direct.py) and no stream
    pays every middleware's `send` wrapper per message (about half of the server's CPU per
    broadcast at 2,000 clients, measured with py-spy); request metrics, a SERVER span or
    rate-limit headers mean nothing for a connection that lasts hours. The routes above stay
    for the OpenAPI document and serve the same code (through ASGI) if this is not installed.
    """

    def __init__(self, app: ASGIApp, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services | None = getattr(self.fastapi_app.state, "services", None)
        path = scope.get("path")
        if services is None or services.feed is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http" and path == STREAM_PATH and scope["method"] == "GET":
            request = Request(scope, receive)
            query = request.query_params
            resume = request.headers.get("last-event-id") or query.get("last_event_id")
            try:
                response: Response = await open_stream(
                    services, request, query.get("channels", NEW), resume
                )
            except Problem as problem:
                response = problem_response(problem, request)
            await response(scope, receive, send)
        elif scope["type"] == "websocket" and path == WS_PATH:
            await serve_socket(services, WebSocket(scope, receive, send), send)
        else:
            await self.app(scope, receive, send)


@router.get(
    "/status",
    summary="This replica's feed, and every replica's over NATS",
    responses=problem_responses(503, descriptions={503: "The live feed is not running"}),
)
async def status(request: Request) -> dict[str, Any]:
    relay = relay_of(request.app)
    return {"local": relay.status(), "replicas": await relay.cluster_status()}


def install_fast_path(app: FastAPI) -> None:
    """Puts FeedFastPath in front of the middleware stack Starlette builds on first use."""
    build = app.build_middleware_stack

    def build_with_feed() -> ASGIApp:
        return FeedFastPath(build(), app)

    app.build_middleware_stack = build_with_feed  # type: ignore[method-assign]
