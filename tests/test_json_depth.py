"""api/json_depth.py: nesting past MAX_JSON_DEPTH is refused before anything parses it."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from fastapi import Body, FastAPI
from fastapi.testclient import TestClient

from api import problems
from api.json_depth import JsonDepthLimit, JsonTooDeep, loads, too_deep


@pytest.mark.parametrize(
    ("raw", "deep"),
    [
        (b'{"a": [1, 2]}', False),
        (b"[" * 32 + b"]" * 32, False),
        (b"[" * 33 + b"]" * 33, True),
        (json.dumps({"a": "[" * 100}).encode(), False),  # brackets inside a string
        (json.dumps({"a": '\\"' + "{" * 100}).encode(), False),  # after an escaped quote
        (b'{"a":[[{}]]}' * 40, False),  # many shallow values
        (b"{" + b"[{" * 20 + b"}]" * 20 + b"}", True),
        (b"]" * 50, False),  # malformed, but not deep: the parser refuses it
        (b"[" * 100_000, True),  # never closed
    ],
)
def test_too_deep(raw: bytes, deep: bool) -> None:
    assert too_deep(raw, 32) is deep


def test_a_megabyte_of_brackets() -> None:
    """Shallow or deep, a body of MAX_BODY_BYTES is judged by passes of C (no recursion)."""
    assert not too_deep(b"[]" * 500_000, 32)
    assert too_deep(b"[" * 500_000 + b"]" * 500_000, 32)
    assert not too_deep((b"[" * 31 + b"]" * 31) * 15_000, 32)


def test_loads_refuses_deep_form_fields() -> None:
    assert loads('[{"x": 1}]', 32) == [{"x": 1}]
    with pytest.raises(JsonTooDeep, match="MAX_JSON_DEPTH"):
        loads("[" * 1500 + "]" * 1500, 32)


def test_the_middleware_answers_422_problem_json_before_the_route() -> None:
    app = FastAPI()
    problems.install(app)
    app.add_middleware(JsonDepthLimit, max_depth=32)

    @app.post("/echo")
    async def echo(body: Annotated[Any, Body()]) -> dict[str, bool]:
        return {"ok": True}

    client = TestClient(app)
    deep = client.post("/echo", content=b"[" * 100_000 + b"]" * 100_000,
                       headers={"content-type": "application/json"})  # fmt: skip
    assert deep.status_code == 422
    assert deep.headers["content-type"] == "application/problem+json"
    assert deep.json()["type"].endswith("json-too-deep")
    assert client.post("/echo", json={"a": [[1]]}).json() == {"ok": True}
    # Not JSON: left alone (a form's fields are checked where they are parsed).
    form = client.post("/echo", content=b"[" * 100, headers={"content-type": "text/plain"})
    assert form.status_code != 422 or "json-too-deep" not in form.text
