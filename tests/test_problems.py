"""Problem+json errors: what the OpenAPI document declares, and the catch-all 500.

No stores needed: the apps here never run their lifespan, and the failing route exists only on
the test's own app instance.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.problems import PROBLEM_JSON, PROBLEM_SCHEMA, TYPE_BASE, ProblemDetails
from domain.logs import ContextFilter, JsonFormatter, current_request_id
from domain.settings import get_settings
from producers.producer import ProducerUnavailable, SchemaRegistryUnavailable

SECRET = "password=hunter2 at /srv/secret/path.py"
#: Error responses that are not problems: readiness answers its checks either way.
NOT_PROBLEMS = {("/ready", "get", "503")}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app(get_settings()).openapi()


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_every_error_response_is_documented_as_problem_json(spec: dict[str, Any]) -> None:
    reference = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA}"}
    wrong = []
    for path, method, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if status[0] not in "45" or (path, method, status) in NOT_PROBLEMS:
                continue
            content = response.get("content", {})
            if content != {PROBLEM_JSON: {"schema": reference}} or not response["description"]:
                wrong.append(f"{method.upper()} {path} {status}: {content}")
        if "500" not in operation["responses"]:
            wrong.append(f"{method.upper()} {path}: no 500")
    assert not wrong, "\n".join(wrong)


def test_validation_errors_are_documented_as_the_body_really_sent(spec: dict[str, Any]) -> None:
    """FastAPI's default 422 (`HTTPValidationError`) is not what `api.problems` sends."""
    assert "HTTPValidationError" not in json.dumps(spec)
    with_input = [
        (path, method)
        for path, method, op in _operations(spec)
        if op.get("parameters") or op.get("requestBody")
    ]
    assert with_input
    for path, method in with_input:
        assert "422" in spec["paths"][path][method]["responses"], (method, path)
    schema = spec["components"]["schemas"][PROBLEM_SCHEMA]
    assert {"type", "title", "status"} <= set(schema["required"])
    assert {"errors", "retry_after", "service", "template_id", "request_id"} <= set(
        schema["properties"]
    )
    assert schema["additionalProperties"] is True  # RFC 9457 extensions stay allowed


def test_documented_problem_bodies_match_what_the_handlers_send() -> None:
    client = TestClient(create_app(get_settings()))
    for response, status in (
        (client.get("/no/such/path"), 404),
        (client.put("/health"), 405),
    ):
        assert response.status_code == status
        assert response.headers["content-type"] == PROBLEM_JSON
        ProblemDetails.model_validate(response.json())


#: The request id the failing route ran under (what its own log lines carried).
SEEN_IDS: list[str | None] = []


@pytest.fixture
def failing_app() -> FastAPI:
    """The production app plus one route that fails the way a bug would."""
    app = create_app(get_settings())

    async def boom() -> None:
        SEEN_IDS.append(current_request_id())
        raise RuntimeError(SECRET)

    app.add_api_route("/api/_test/boom", boom, methods=["GET"])
    return app


@pytest.fixture
def problem_log() -> Iterator[io.StringIO]:
    """The `api.problems` logger's lines, formatted as in production (JSON, context filter)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter("test"))
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("api.problems")
    logger.addHandler(handler)
    try:
        yield out
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize("sent_id", ["req-from-the-client-42", None])
def test_an_unhandled_exception_is_a_500_problem_without_internals(
    failing_app: FastAPI, problem_log: io.StringIO, sent_id: str | None
) -> None:
    SEEN_IDS.clear()
    client = TestClient(failing_app, raise_server_exceptions=False)
    headers = {"X-Request-ID": sent_id} if sent_id else {}
    response = client.get("/api/_test/boom", headers=headers)

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    body = ProblemDetails.model_validate(response.json())
    assert body.type == TYPE_BASE + "internal-error" and body.status == 500
    assert body.instance == "/api/_test/boom"
    for leak in ("hunter2", "secret", "RuntimeError", "Traceback", ".py"):
        assert leak not in response.text, leak
    request_id = response.headers["x-request-id"]
    assert body.request_id == request_id and request_id == (sent_id or request_id)
    assert [request_id] == SEEN_IDS, "the 500 names the id the request's own logs carried"

    lines = [json.loads(line) for line in problem_log.getvalue().splitlines()]
    assert len(lines) == 1, lines
    (line,) = lines
    assert line["level"] == "ERROR" and line["request_id"] == request_id
    assert "RuntimeError" in line["exc"] and "hunter2" in line["exc"]  # the log keeps it all


def test_details_carry_no_python_reprs() -> None:
    from api.problems import Problem, scrub

    assert scrub("cannot identify image file <_io.BytesIO object at 0x7f3a2b10>") == (
        "cannot identify image file the input"
    )
    assert scrub("Expected UploadFile, received: <class 'str'>") == (
        "Expected UploadFile, received: str"
    )
    body = Problem(422, "invalid-image", "Bad", "broken <PIL.Image object at 0xdeadbeef>").body()
    assert "0x" not in body["detail"]


@pytest.mark.parametrize(
    ("error", "service"),
    [(ProducerUnavailable, "kafka"), (SchemaRegistryUnavailable, "schema-registry")],
)
def test_an_unacknowledged_event_is_a_503_naming_the_service(
    problem_log: io.StringIO, error: type[ProducerUnavailable], service: str
) -> None:
    """Routes let the producer's refusal raise; one handler answers it for every route."""
    app = create_app(get_settings())

    async def produce() -> None:
        raise error("not acknowledged within the timeout")

    app.add_api_route("/api/_test/produce", produce, methods=["POST"])
    response = TestClient(app, raise_server_exceptions=False).post("/api/_test/produce")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "5"
    body = ProblemDetails.model_validate(response.json())
    assert body.type == TYPE_BASE + "service-unavailable" and body.service == service
    assert service in problem_log.getvalue()
