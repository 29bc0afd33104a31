"""A small real HTTP server on loopback that answers like the API's meme routes, for the
load generator's own tests (its engine, not the platform, is under test there)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

SPEC = {
    "paths": {
        "/api/meme/generate": {"post": {}},
        "/api/meme/{meme_id}": {"get": {}},
        "/api/meme/{meme_id}/vote": {"post": {}},
    }
}


@dataclass(slots=True)
class FakeApi:
    url: str = ""
    delay_s: float = 0.0
    #: (method, path, authorization header or "") of every request but /openapi.json
    seen: list[tuple[str, str, str]] = field(default_factory=list)
    created: set[str] = field(default_factory=set)


@asynccontextmanager
async def fake_api(delay_s: float = 0.0) -> AsyncIterator[FakeApi]:
    api = FakeApi(delay_s=delay_s)

    async def spec(request: web.Request) -> web.Response:
        return web.json_response(SPEC)

    async def generate(request: web.Request) -> web.Response:
        api.seen.append(("POST", request.path, request.headers.get("authorization", "")))
        await request.read()
        await asyncio.sleep(api.delay_s)
        meme_id = str(uuid.uuid4())
        api.created.add(meme_id)
        return web.json_response({"meme_id": meme_id}, status=202)

    async def get_meme(request: web.Request) -> web.Response:
        api.seen.append(("GET", request.path, request.headers.get("authorization", "")))
        await asyncio.sleep(api.delay_s)
        meme_id = request.match_info["meme_id"]
        if meme_id not in api.created:
            return web.json_response({"title": "No such meme"}, status=404)
        return web.json_response({"id": meme_id, "status": "rendered"})

    async def vote(request: web.Request) -> web.Response:
        auth = request.headers.get("authorization", "")
        api.seen.append(("POST", request.path, auth))
        await request.read()
        return web.json_response({}, status=200 if auth else 401)

    app = web.Application()
    app.router.add_get("/openapi.json", spec)
    app.router.add_post("/api/meme/generate", generate)
    app.router.add_get("/api/meme/{meme_id}", get_meme)
    app.router.add_post("/api/meme/{meme_id}/vote", vote)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api.url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        await runner.cleanup()
