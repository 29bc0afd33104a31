"""Replays trace actions through the REST API with httpx's AsyncClient.

Other issues add endpoints over time, so each action has candidate routes and the target
reads the API's own `/openapi.json` to pick the first that exists. An action with no route
yet is skipped with the reason "no endpoint" (counted, not an error). New actions or routes
are one line in `CANDIDATES`.

Accounts: with `auth="needed"` (the default) a trace user registers and logs in the first time
it votes or uploads (those need an account), so that first request's latency includes the
login; with
`auth="all"` every trace user logs in before its first request of any kind, which also makes
rate limits per user instead of per client IP; `auth="none"` sends everything anonymously.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from loadgen.images import noise_png
from loadgen.stats import Outcome
from loadgen.trace import TraceRecord

_PARAM = re.compile(r"\{[^}]+\}")
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


class RestTarget:
    name = "rest"

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 2000,
        auth: str = "needed",
    ) -> None:
        if auth not in {"none", "needed", "all"}:
            raise ValueError("auth is one of none, needed, all")
        self.auth = auth
        self.run_id = uuid.uuid4().hex[:6]
        self._sessions: dict[str, asyncio.Task[str | None]] = {}
        self._can_login = False
        self.base_url = base_url.rstrip("/")
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=500)
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=limits,
            headers=dict(headers or {}),
        )
        self.routes: dict[str, Route] = {}

    async def setup(self) -> None:
        try:
            response = await self.client.get("/openapi.json")
            response.raise_for_status()
            spec = response.json()
            self.routes = routes_from_openapi(spec)
            paths = spec.get("paths", {})
            self._can_login = "/api/auth/register" in paths and "/api/auth/login" in paths
        except (httpx.HTTPError, ValueError):
            # No spec: assume the foundation's routes only.
            self.routes = {a: c[0] for a, c in CANDIDATES.items() if a in {"generate", "get_meme"}}

    async def close(self) -> None:
        await self.client.aclose()

    async def execute(self, record: TraceRecord, meme_id: str | None) -> Outcome:
        route = self.routes.get(record.action)
        if route is None:
            return Outcome(skipped="no endpoint")
        path = route.path.replace("{}", meme_id or "")
        payload = record.payload
        headers = {"x-request-id": f"loadgen-{record.seq}"}
        try:
            if self._can_login and (
                self.auth == "all" or (self.auth == "needed" and record.action in NEEDS_ACCOUNT)
            ):
                token = await self._token(record.user)
                if token:
                    headers["authorization"] = f"Bearer {token}"
            match record.action:
                case "generate":
                    response = await self.client.post(path, json=payload, headers=headers)
                    return _outcome(response, created_key="meme_id")
                case "batch":
                    body = {route.body_key or "items": payload["items"]}
                    response = await self.client.post(path, json=body, headers=headers)
                    return _outcome(response, created_key="meme_id")
                case "upload":
                    data = await asyncio.to_thread(
                        noise_png, payload["seed"], payload["width"], payload["height"]
                    )
                    files = {route.file_field or "file": ("upload.png", data, "image/png")}
                    form = {"name": f"loadgen {self.run_id} {record.seq}"}
                    response = await self.client.post(path, files=files, data=form, headers=headers)
                    return _outcome(response)
                case "get_meme":
                    params = {"window": payload.get("window", "24h")}
                    return _outcome(await self.client.get(path, params=params, headers=headers))
                case "get_image":
                    params = {"size": payload.get("size", "full")}
                    return _outcome(await self.client.get(path, params=params, headers=headers))
                case "view" if route.method == "GET":
                    return _outcome(await self.client.get(path, headers=headers))
                case "view":
                    return _outcome(await self.client.post(path, json={}, headers=headers))
                case "vote":
                    body = {"value": payload.get("value", 1)}
                    return _outcome(await self.client.post(path, json=body, headers=headers))
                case "trending":
                    params = {"window": payload.get("window", "24h")}
                    return _outcome(await self.client.get(path, params=params, headers=headers))
                case "feed":
                    return await self._feed(path, float(payload.get("hold_s", 5.0)), headers)
                case _:
                    return Outcome(skipped="unknown action")
        except httpx.HTTPError as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}".strip(": "))

    async def _token(self, user: str) -> str | None:
        """One registration and login per trace user, shared by its concurrent requests."""
        task = self._sessions.get(user)
        if task is None:
            task = asyncio.create_task(self._login(f"lg-{self.run_id}-{user}"))
            self._sessions[user] = task
        return await task

    async def _login(self, username: str) -> str | None:
        credentials = {"username": username, "password": f"pw-{username}-loadgen"}
        await self.client.post("/api/auth/register", json=credentials)
        response = await self.client.post("/api/auth/login", json=credentials)
        if response.status_code != 200:
            return None
        token = response.json().get("token")
        return str(token) if token else None

    async def _feed(self, path: str, hold_s: float, headers: dict[str, str]) -> Outcome:
        """Connect, hold the stream open for `hold_s`, close; latency is time to headers."""
        headers = headers | {"accept": "text/event-stream"}
        sent = time.monotonic()
        async with self.client.stream("GET", path, headers=headers) as response:
            ttfb = time.monotonic() - sent
            if response.status_code >= 400:
                return Outcome(status=response.status_code, time_to_headers=ttfb)
            deadline = time.monotonic() + hold_s

            async def drain() -> None:
                async for _ in response.aiter_bytes():
                    if time.monotonic() > deadline:
                        return

            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drain(), timeout=hold_s)
            return Outcome(status=response.status_code, time_to_headers=ttfb)


def _outcome(response: httpx.Response, created_key: str | None = None) -> Outcome:
    created: tuple[str, ...] = ()
    if created_key and response.status_code < 300:
        try:
            body = response.json()
        except ValueError:
            body = None
        created = tuple(_find_ids(body, created_key))
    return Outcome(status=response.status_code, created=created)


def _find_ids(body: Any, key: str) -> list[str]:
    """`meme_id`s in a response: `{"meme_id": ..}` or a list/`items` of those."""
    if isinstance(body, Mapping):
        if isinstance(body.get(key), str):
            return [body[key]]
        return [i for v in body.values() if isinstance(v, list) for i in _find_ids(v, key)]
    if isinstance(body, list):
        return [i for item in body for i in _find_ids(item, key)]
    return []
