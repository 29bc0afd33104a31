"""Errors as RFC 9457 problem details, each with a stable `type` clients can branch on.

`ProblemDetails` is the body's schema for the OpenAPI document (component `Problem`), and
`problem_responses()` declares it, as `application/problem+json`, for the error statuses a
route can answer; `install()` adds the handlers that produce these bodies, the catch-all 500
included, and puts the schema into the document.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.logs import REQUEST_ID_HEADER, bound_request_id, current_request_id, new_request_id
from producers.producer import ProducerUnavailable
from sinks.postgres.errors import POSTGRES_ERRORS

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://memestream.dev/problems/"
PROBLEM_SCHEMA = "Problem"


class ValidationIssue(BaseModel):
    """One entry of `errors`: where the request is wrong and why (pydantic's own words)."""

    loc: list[str | int] = Field(description='Path to the bad value, e.g. `["body", "texts", 0]`')
    msg: str
    type: str


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`): branch on `type`.

    The extension members listed are the ones the API sends; as RFC 9457 allows, others may
    appear, and a client ignores members it does not know.
    """

    model_config = ConfigDict(
        title=PROBLEM_SCHEMA,
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": TYPE_BASE + "meme-not-found",
                    "title": "No such meme",
                    "status": 404,
                    "detail": "no meme has the id 01a22554-2caf-74c0-8ab6-2678edb7c00b",
                    "instance": "/api/meme/01a22554-2caf-74c0-8ab6-2678edb7c00b",
                },
                {
                    "type": TYPE_BASE + "validation-error",
                    "title": "The request is not valid",
                    "status": 422,
                    "instance": "/api/meme/generate",
                    "errors": [
                        {
                            "loc": ["body", "texts"],
                            "msg": "Input should be a valid list",
                            "type": "list_type",
                        }
                    ],
                },
            ]
        },
    )

    type: str = Field(description="Stable URI of the problem kind: branch on this")
    title: str = Field(description="Short human-readable summary of the kind")
    status: int = Field(ge=400, le=599, description="The HTTP status, repeated")
    detail: str | None = Field(None, description="What went wrong with this request")
    instance: str | None = Field(None, description="The request path")
    errors: list[ValidationIssue] | None = Field(
        None, description="`validation-error` (422) and `malformed-json` (400): every issue found"
    )
    retry_after: int | None = Field(
        None, description="`rate-limited` (429): seconds to wait, as in `Retry-After`"
    )
    service: str | None = Field(
        None, description="`service-unavailable` (503): which backing service did not answer"
    )
    template_id: str | None = Field(None, description="`unknown-template` (422): the id sent")
    request_id: str | None = Field(
        None, description="`internal-error` (500): find the failure in the logs by this id"
    )


#: Why a route answers each status, unless the route says more precisely.
DESCRIPTIONS: dict[int, str] = {
    400: "Malformed JSON or multipart body, or an invalid header",
    401: "Authentication required, or the credential sent is invalid",
    403: "Not allowed for this account",
    404: "Not found",
    409: "Conflicts with the resource's current state",
    413: "Body too large (`MAX_BODY_BYTES`; uploads `MAX_UPLOAD_BYTES`)",
    415: "Unsupported media type",
    422: "The request is not valid: `errors` lists every issue",
    429: "Rate limited: retry after `Retry-After` seconds",
    500: "Unexpected error: `request_id` finds it in the logs; nothing internal is shown",
    503: "A backing service is unavailable: retry after `Retry-After` seconds",
    507: "The upload could not be stored: retry after `Retry-After` seconds",
}


#: What any route behind `api.ratelimit.RateLimited` may answer: its caller lookup refuses an
#: invalid credential (401) or cannot reach the key and session stores (503), its limit 429.
LIMITED_STATUSES = (401, 429, 503)


def problem_responses(
    *statuses: int, descriptions: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries declaring the problem+json body for each error status.

    FastAPI's `model=` would put the schema under the route's own media type
    (application/json), so the content is spelled out with a reference to the `Problem`
    component that `install()` adds. Declaring 422 also replaces FastAPI's default
    `HTTPValidationError`, which is not what the API sends.
    """
    described = {**DESCRIPTIONS, **(descriptions or {})}
    content = {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA}"}}}
    return {
        status: {"description": described.get(status, "Error"), "content": content}
        for status in statuses
    }


#: Python reprs that say nothing to a client and leak internals: `<_io.BytesIO object at 0x..>`,
#: `<class 'str'>`, `<function f at 0x..>`.
_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")
_CLASS_REPR = re.compile(r"<class '(?:[\w]+\.)*(\w+)'>")


def scrub(text: str) -> str:
    """`text` without Python object reprs (each becomes `the input`; a class its name)."""
    while (scrubbed := _REPR.sub("the input", text)) != text:  # nested reprs, inside out
        text = scrubbed
    return _CLASS_REPR.sub(r"\1", text)


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": TYPE_BASE + self.slug, "title": self.title}
        body["status"] = self.status
        if self.detail:
            body["detail"] = scrub(self.detail)
        if instance:
            body["instance"] = instance
        return body | self.extensions


def problem_response(problem: Problem, request: Request) -> JSONResponse:
    return JSONResponse(
        problem.body(request.url.path),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )


def invalid_data(exc: psycopg.DataError) -> Problem:
    """A value PostgreSQL refused (NUL in text, a bad byte sequence, a number out of range):
    the client's data, so a 422, never "postgres did not answer". The field is not named by
    PostgreSQL; its message (SQLSTATE class 22) is."""
    sqlstate = exc.sqlstate or "22000"
    reason = (exc.diag.message_primary or "invalid value").split("\n")[0][:200]
    return Problem(
        422,
        "invalid-data",
        "A value cannot be stored",
        f"the database refused a value of this request: {reason} (SQLSTATE {sqlstate})",
    )


def store_problem(exc: BaseException) -> Problem:
    """The answer to a PostgreSQL error: the client's data (`DataError`) is a 422; anything
    else (connection lost, pool exhausted, server down) is a 503 with `Retry-After`."""
    if isinstance(exc, psycopg.DataError):
        return invalid_data(exc)
    return unavailable("postgres")


def unknown_template(template_id: str) -> Problem:
    """Neither the catalogue nor the uploads have `template_id` (generate, batch, captions)."""
    return Problem(
        422,
        "unknown-template",
        "Unknown template",
        f"no template has the id {template_id!r}",
        template_id=template_id,
    )


def unavailable(service: str, retry_after: int = 5) -> Problem:
    return Problem(
        503,
        "service-unavailable",
        "A backing service is unavailable",
        f"{service} did not answer; nothing was stored. Retry later.",
        headers={"Retry-After": str(retry_after)},
        service=service,
    )


_HTTP_SLUGS = {
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A 500 that names no internals; the exception is logged under the request's id.

    Starlette runs this handler in its outermost middleware, after the request-id middleware
    has unbound its id, so the id is the one that middleware left in the request's state (the
    caller's `X-Request-ID` or the one it made); it is sent back in the header and the body
    and is on the log line.
    """
    request_id = getattr(request.state, "request_id", None) or current_request_id()
    if request_id is None:
        raw = request.headers.get(REQUEST_ID_HEADER)
        request_id = raw[:128] if raw else new_request_id()
    with bound_request_id(request_id):
        log.error(
            "unhandled %s on %s %s",
            type(exc).__name__,
            request.method,
            request.url.path,
            exc_info=exc,
        )
    problem = Problem(
        500,
        "internal-error",
        "Internal server error",
        "The server failed unexpectedly; quote request_id when reporting it.",
        headers={REQUEST_ID_HEADER: request_id},
        request_id=request_id,
    )
    return problem_response(problem, request)


def _with_problem_schema(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """`app.openapi` plus the `Problem` component that `problem_responses()` refers to."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        spec = generate()  # cached by FastAPI until the routes change
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        if PROBLEM_SCHEMA not in schemas:
            schema = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[PROBLEM_SCHEMA] = schema
        return spec

    return openapi


def install(app: FastAPI) -> None:
    app.openapi = _with_problem_schema(app)  # type: ignore[method-assign]
    app.add_exception_handler(Exception, internal_error)

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    async def on_store_error(request: Request, exc: Exception) -> JSONResponse:
        """Routes let PostgreSQL's errors propagate: one translation for every route."""
        problem = store_problem(exc)
        if problem.status >= 500:
            log.warning("postgres unavailable on %s: %s", request.url.path, exc)
        return problem_response(problem, request)

    for error in POSTGRES_ERRORS:
        app.add_exception_handler(error, on_store_error)

    @app.exception_handler(ProducerUnavailable)
    async def on_producer_unavailable(request: Request, exc: ProducerUnavailable) -> JSONResponse:
        """Kafka (or the schema registry) did not take an event: nothing may claim the write
        happened, so a 503 naming the service, whatever the route."""
        log.warning("%s unavailable on %s: %s", exc.service, request.url.path, exc)
        return problem_response(unavailable(exc.service), request)

    @app.exception_handler(UnicodeEncodeError)
    async def on_unencodable(request: Request, exc: UnicodeEncodeError) -> JSONResponse:
        """A lone surrogate (JSON allows `\\ud800`) reached a store's UTF-8 encoder: the
        client's text, so a 422 like PostgreSQL's own data errors."""
        problem = Problem(
            422,
            "invalid-data",
            "A value cannot be stored",
            f"a text holds a character UTF-8 cannot encode ({exc.reason})",
        )
        return problem_response(problem, request)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [p if isinstance(p, int) else scrub(str(p))[:64] for p in e.get("loc", ())],
                "msg": scrub(str(e.get("msg", ""))),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            problem = Problem(400, "malformed-json", "The body is not valid JSON", errors=errors)
        else:
            problem = Problem(422, "validation-error", "The request is not valid", errors=errors)
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
        problem = Problem(exc.status_code, slug, str(exc.detail), headers=exc.headers or None)
        return problem_response(problem, request)
