"""api/uvicorn_compat.py against a real uvicorn server in this process: the accessors find the
socket's transport behind uvicorn's `send` and its exiting state, and `check` refuses an
untested version (faked: the installed uvicorn cannot be swapped inside a test)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
import websockets

from api import uvicorn_compat
from domain.tested_versions import UntestedVersion


def test_the_installed_uvicorn_is_in_the_tested_range() -> None:
    assert set(uvicorn_compat.check()) == {"uvicorn"}


@pytest.mark.parametrize("untested", ["0.56.0", "0.29.0", "1.0"])
def test_an_untested_uvicorn_is_refused_with_its_version_and_the_range(
    untested: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from domain import tested_versions

    monkeypatch.setattr(tested_versions, "installed_version", lambda _: untested)
    with pytest.raises(UntestedVersion) as raised:
        uvicorn_compat.check()
    assert f"uvicorn {untested}" in str(raised.value)
    assert uvicorn_compat.TESTED["uvicorn"] in str(raised.value)


def test_the_api_app_is_not_built_on_an_untested_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    from api.app import create_app
    from domain import tested_versions

    monkeypatch.setattr(tested_versions, "installed_version", lambda _: "9.9")
    with pytest.raises(UntestedVersion, match=r"uvicorn 9\.9"):
        create_app()


class Probe:
    """An ASGI app that records what the accessors find behind uvicorn's own `send`."""

    def __init__(self) -> None:
        self.found: dict[str, Any] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            self.found[scope["path"]] = uvicorn_compat.sse_transport(send)
            await send({"type": "http.response.body", "body": b"ok"})
        else:
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            self.found["ws"] = uvicorn_compat.ws_transport(send)
            self.found["exiting"] = uvicorn_compat.server_exiting()
            await send({"type": "websocket.close", "code": 1000})


@asynccontextmanager
async def serving(app: Probe) -> AsyncIterator[tuple[uvicorn.Server, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to await
            await asyncio.sleep(0.01)
        yield server, port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


async def test_the_accessors_find_uvicorns_transports_and_its_exit() -> None:
    app = Probe()
    async with serving(app) as (server, port):
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/chunked")
        assert response.text == "ok" and response.headers["transfer-encoding"] == "chunked"
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
            with pytest.raises(websockets.ConnectionClosedOK):
                await ws.recv()
        plain_ws = app.found["ws"]
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:  # permessage-deflate
            with pytest.raises(websockets.ConnectionClosedOK):
                await ws.recv()
        assert not uvicorn_compat.server_exiting()
        server.should_exit = True
        assert uvicorn_compat.server_exiting()
    for found in (app.found["/chunked"], plain_ws):
        assert isinstance(found, asyncio.WriteTransport)
        assert found.get_extra_info("socket") is not None
    assert app.found["ws"] is None, "compressed frames must keep the ASGI path"
    assert app.found["exiting"] is False


def test_sends_that_are_not_uvicorns_give_no_transport() -> None:
    async def send(message: Any) -> None:
        return None

    assert uvicorn_compat.sse_transport(send) is None
    assert uvicorn_compat.ws_transport(send) is None
