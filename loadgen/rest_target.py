"""Replays trace actions through the REST API on aiohttp, a client built for load.

Why aiohttp: the replayer must never be the limit. httpx's pool (httpcore) rescans every
connection for every queued request, so with a few hundred requests in flight the replayer spent
its core there and the API sat idle (issue 16). aiohttp's connector hands out connections from
a free list, keeps the open-loop, per-record scheduling and our report in Python, and one event
loop per worker process (loadgen/workers.py) scales it across cores. k6 or Locust would replace
the trace replay and the report with their own, and neither replays a trace open-loop as is.

Other issues add endpoints over time, so each action has candidate routes and the target
reads the API's own `/openapi.json` to pick the first that exists. An action with no route
yet is skipped with the reason "no endpoint" (counted, not an error). New actions or routes
are one line in `CANDIDATES`.

Credentials: `credentials` maps trace users to API keys (loadgen/accounts.py); a request of a
user with a key carries it (`Authorization: Bearer`), any other request goes anonymously.
The connection pool is bounded (`connections`); a request that waits for a free connection
reports the wait (`Outcome.queued_s`) as the generator's own lateness.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson

from domain.trending_windows import DEFAULT_WINDOW
from loadgen.images import noise_png
from loadgen.stats import Outcome
from loadgen.trace import TraceRecord

_PARAM = re.compile(r"\{[^}]+\}")
#: Actions the API refuses anonymously.
NEEDS_ACCOUNT = frozenset({"vote", "upload"})


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # with `{}` where the meme id goes
    body_key: str | None = None  # for batches: the list field's name
    file_field: str | None = None  # for multipart uploads


CANDIDATES: dict[str, tuple[Route, ...]] = {
    "generate": (Route("POST", "/api/meme/generate"),),
    "batch": (
        Route("POST", "/api/meme/batch"),
        Route("POST", "/api/memes/batch"),
        Route("POST", "/api/meme/generate/batch"),
    ),
    "upload": (
        Route("POST", "/api/uploads"),
        Route("POST", "/api/upload"),
        Route("POST", "/api/templates"),
        Route("POST", "/api/meme/upload"),
    ),
    "get_meme": (Route("GET", "/api/meme/{}"),),
    "get_image": (Route("GET", "/api/meme/{}/image"),),
    # No view route: reading a meme counts a view (of a rendered meme), so GET is the fallback.
    "view": (
        Route("POST", "/api/meme/{}/view"),
        Route("POST", "/api/meme/{}/views"),
        Route("GET", "/api/meme/{}"),
    ),
    "vote": (Route("POST", "/api/meme/{}/vote"), Route("POST", "/api/meme/{}/votes")),
    "trending": (
        Route("GET", "/api/trending"),
        Route("GET", "/api/memes/trending"),
        Route("GET", "/api/meme/trending"),
    ),
    "feed": (
        Route("GET", "/api/feed/stream"),
        Route("GET", "/api/feed/sse"),
        Route("GET", "/api/feed/events"),
        Route("GET", "/api/feed"),
        Route("GET", "/feed/sse"),
    ),
}


def _normalise(path: str) -> str:
    return _PARAM.sub("{}", path)


def _resolve(spec: Mapping[str, Any], node: Any) -> Any:
    while isinstance(node, Mapping) and "$ref" in node:
        target: Any = spec
        for part in str(node["$ref"]).lstrip("#/").split("/"):
            target = target.get(part, {})
        node = target
    return node


def _body_schema(spec: Mapping[str, Any], op: Mapping[str, Any], media: str) -> Mapping[str, Any]:
    content = _resolve(spec, op.get("requestBody", {})).get("content", {})
    return _resolve(spec, content.get(media, {}).get("schema", {})) or {}


def routes_from_openapi(spec: Mapping[str, Any]) -> dict[str, Route]:
    """The first candidate route per action that the spec declares, with body details."""
    paths = {_normalise(p): ops for p, ops in spec.get("paths", {}).items()}
    found: dict[str, Route] = {}
    for action, candidates in CANDIDATES.items():
        for route in candidates:
            op = paths.get(route.path, {}).get(route.method.lower())
            if op is None:
                continue
            if action == "batch":
                props = _body_schema(spec, op, "application/json").get("properties", {})
                key = next(
                    (k for k, v in props.items() if _resolve(spec, v).get("type") == "array"),
                    "items",
                )
                route = Route(route.method, route.path, body_key=key)
            if action == "upload":
                props = _body_schema(spec, op, "multipart/form-data").get("properties", {})
                field = next(
                    (
                        k
                        for k, v in props.items()
                        if _resolve(spec, v).get("format") == "binary"
                        or _resolve(spec, v).get("contentMediaType")
                    ),
                    "file",
                )
                route = Route(route.method, route.path, file_field=field)
            found[action] = route
            break
    return found


class _Wait:
    """Per-request context of aiohttp's tracing: how long it waited for a connection."""

    __slots__ = ("queued_at", "queued_s")

    def __init__(self) -> None:
        self.queued_at = 0.0
        self.queued_s = 0.0


async def _queued_start(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object
) -> None:
    ctx.trace_request_ctx.queued_at = time.monotonic()


async def _queued_end(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object) -> None:
    wait: _Wait = ctx.trace_request_ctx
    wait.queued_s += time.monotonic() - wait.queued_at


_JSON = {"content-type": "application/json"}
#: Idle connections are dropped before uvicorn's keep-alive timeout (5 s) closes them: else a
#: request sent on a connection the server is closing fails as a reset that was no server's.
KEEPALIVE_S = 4.0
#: What a failed request looks like on the client side: resets, refused connections, timeouts.
CLIENT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


class RestTarget:
    name = "rest"

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        headers: Mapping[str, str] | None = None,
        connections: int = 1000,
        credentials: Mapping[str, str] | None = None,
        routes: Mapping[str, Route] | None = None,
    ) -> None:
        """`routes` pins the action -> route map instead of reading `/openapi.json`."""
        self.run_id = uuid.uuid4().hex[:6]
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.connections = connections
        self.credentials = dict(credentials or {})
        self.routes: dict[str, Route] = dict(routes or {})
        self.session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        tracing = aiohttp.TraceConfig()
        tracing.on_connection_queued_start.append(_queued_start)
        tracing.on_connection_queued_end.append(_queued_end)
        return aiohttp.ClientSession(
            base_url=self.base_url,
            connector=aiohttp.TCPConnector(
                limit=self.connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_S
            ),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s, connect=min(10.0, self.timeout_s)),
            headers=self.headers,
            trace_configs=[tracing],
            auto_decompress=False,
        )

    async def setup(self) -> None:
        """Opens the pool and reads the routes (once: a worker sets up before its start)."""
        if self.session is None:
            self.session = self._session()
        if self.routes:
            return
        try:
            async with self.session.get("/openapi.json") as response:
                response.raise_for_status()
                spec = orjson.loads(await response.read())
            self.routes = routes_from_openapi(spec)
        except (*CLIENT_ERRORS, ValueError):
            # No spec: assume the foundation's routes only.
            self.routes = {a: c[0] for a, c in CANDIDATES.items() if a in {"generate", "get_meme"}}

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def execute(self, record: TraceRecord, meme_id: str | None) -> Outcome:
        route = self.routes.get(record.action)
        if route is None:
            return Outcome(skipped="no endpoint")
        assert self.session is not None, "setup() first"
        path = route.path.replace("{}", meme_id or "")
        payload = record.payload
        headers = {"x-request-id": f"loadgen-{record.seq}"}
        key = self.credentials.get(record.user)
        if key:
            headers["authorization"] = f"Bearer {key}"
        wait = _Wait()
        params: dict[str, str] | None = None
        data: bytes | aiohttp.FormData | None = None
        created_key: str | None = None
        try:
            match record.action:
                case "generate":
                    data, created_key = orjson.dumps(payload), "meme_id"
                case "batch":
                    data = orjson.dumps({route.body_key or "items": payload["items"]})
                    created_key = "meme_id"
                case "upload":
                    data = await self._upload_form(record, route)
                case "get_meme" | "trending":
                    params = {"window": payload.get("window", DEFAULT_WINDOW.name)}
                case "get_image":
                    params = {"size": payload.get("size", "full")}
                case "view" if route.method == "POST":
                    data = b"{}"
                case "vote":
                    data = orjson.dumps({"value": payload.get("value", 1)})
                case "feed":
                    return await self._feed(path, float(payload.get("hold_s", 5.0)), headers, wait)
                case "view":
                    pass
                case _:
                    return Outcome(skipped="unknown action")
            if isinstance(data, bytes):
                headers |= _JSON
            request = self.session.request(
                route.method,
                path,
                params=params,
                data=data,
                headers=headers,
                trace_request_ctx=wait,
            )
            async with request as response:
                body = await response.read()
        except CLIENT_ERRORS as exc:
            return Outcome(error=_describe(exc), queued_s=wait.queued_s)
        created: tuple[str, ...] = ()
        if created_key and response.status < 300:
            try:
                created = tuple(_find_ids(orjson.loads(body), created_key))
            except ValueError:
                created = ()
        return Outcome(status=response.status, created=created, queued_s=wait.queued_s)

    async def _upload_form(self, record: TraceRecord, route: Route) -> aiohttp.FormData:
        payload = record.payload
        image = await asyncio.to_thread(
            noise_png, payload["seed"], payload["width"], payload["height"]
        )
        form = aiohttp.FormData()
        form.add_field("name", f"loadgen {self.run_id} {record.seq}")
        form.add_field(
            route.file_field or "file", image, filename="upload.png", content_type="image/png"
        )
        return form

    async def _feed(
        self, path: str, hold_s: float, headers: dict[str, str], wait: _Wait
    ) -> Outcome:
        """Connect, hold the stream open for `hold_s`, close; latency is time to headers."""
        assert self.session is not None
        headers = headers | {"accept": "text/event-stream"}
        sent = time.monotonic()
        async with self.session.get(path, headers=headers, trace_request_ctx=wait) as response:
            ttfb = time.monotonic() - sent
            outcome = Outcome(status=response.status, time_to_headers=ttfb, queued_s=wait.queued_s)
            if response.status >= 400:
                return outcome

            async def drain() -> None:
                async for _ in response.content.iter_any():
                    pass

            with contextlib.suppress(TimeoutError, aiohttp.ClientPayloadError):
                await asyncio.wait_for(drain(), timeout=hold_s)
            return outcome


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TimeoutError) and not text:
        text = "no answer within the request timeout"
    return f"{type(exc).__name__}: {text}".strip(": ")


def _find_ids(body: Any, key: str) -> list[str]:
    """`meme_id`s in a response: `{"meme_id": ..}` or a list/`items` of those."""
    if isinstance(body, Mapping):
        if isinstance(body.get(key), str):
            return [body[key]]
        return [i for v in body.values() if isinstance(v, list) for i in _find_ids(v, key)]
    if isinstance(body, list):
        return [i for item in body for i in _find_ids(item, key)]
    return []
