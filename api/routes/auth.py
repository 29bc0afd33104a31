"""Accounts: register, log in and out (sessions in Redis), API keys (stored hashed).

Register and login are anonymous (limited by IP like every write); the rest needs a session or
an API key. A session token is returned in the body and as an HttpOnly cookie; an API key is
shown once, at creation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import psycopg
from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.auth import SESSION_COOKIE, DataDep, UserDep
from api.dependencies import ServicesDep
from api.problems import LIMITED_STATUSES, Problem, problem_responses, unavailable
from api.ratelimit import RateLimited
from api.text_fields import StoredText
from domain.rendering.validation import label_problem
from sinks.postgres.users import UsernameTaken
from sinks.redis import REDIS_ERRORS
from sinks.redis.sessions import Session

router = APIRouter(
    prefix="/api/auth",
    tags=["auth"],
    dependencies=[RateLimited],
    responses=problem_responses(*LIMITED_STATUSES),
)
#: The JSON-body routes: a malformed or oversized body, a body that fails validation.
BODY_PROBLEMS = problem_responses(400, 413, 422)


class Credentials(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"username": "grumpy_cat", "password": "correct horse"}]},
    )
    username: str = Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    # No control characters: none can be typed, and NUL ends a C string in hashers.
    password: StoredText = Field(min_length=8, max_length=256)


class Registration(Credentials):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"username": "grumpy_cat", "password": "correct horse", "email": "g@example.com"}
            ]
        },
    )
    # No whitespace and no control character (NUL included: PostgreSQL cannot store it).
    email: str | None = Field(
        None, max_length=254, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"
    )

    @field_validator("email")
    @classmethod
    def storable(cls, email: str | None) -> str | None:
        problem = None if email is None else label_problem(email)
        if problem:  # a lone surrogate passes the pattern; UTF-8 cannot encode it
            raise ValueError(problem)
        return email


class UserOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "01a22554-28f1-7e66-9d25-2b63fbd582ba",
                    "username": "grumpy_cat",
                    "role": "user",
                    "created_at": "2026-11-29T03:23:22Z",
                }
            ]
        }
    )
    id: str
    username: str
    role: str
    created_at: datetime | None = None


class SessionOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": "mss_PYyiBjbxUmEMw145ayGSrz5bITUhrS4lLAXa1eNGHLY",
                    "token_type": "Bearer",
                    "expires_in": 604800,
                    "user": {
                        "id": "01a22554-28f1-7e66-9d25-2b63fbd582ba",
                        "username": "grumpy_cat",
                        "role": "user",
                    },
                }
            ]
        }
    )
    token: str
    token_type: str = "Bearer"
    expires_in: int
    user: UserOut


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "ci"}]})
    name: StoredText = Field(min_length=1, max_length=64)


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewKey(KeyOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "01a22554-2caf-74c0-8ab6-2678edb7c00b",
                    "name": "ci",
                    "prefix": "msk_Ck9_RV",
                    "created_at": "2026-11-29T03:23:23Z",
                    "last_used_at": None,
                    "revoked_at": None,
                    "key": "msk_Ck9_RVi6WnrX95pKnCgU4sYudXu6OSpZanzthmmS0mI",
                }
            ]
        }
    )
    key: str = Field(description="The secret; shown only now")


@router.post(
    "/register",
    status_code=201,
    response_model=UserOut,
    responses={**BODY_PROBLEMS, **problem_responses(409, descriptions={409: "Username taken"})},
    summary="Create an account",
)
async def register(body: Registration, data: DataDep) -> UserOut:
    try:
        user = await data.users.create(body.username, body.password, email=body.email)
    except UsernameTaken as exc:
        raise Problem(409, "username-taken", "Username taken", body.username) from exc
    return UserOut(id=user.id, username=user.username, role=user.role, created_at=user.created_at)


@router.post(
    "/login",
    response_model=SessionOut,
    responses={
        **BODY_PROBLEMS,
        **problem_responses(401, descriptions={401: "Wrong username or password"}),
    },
    summary="Log in: a session token (body and HttpOnly cookie)",
)
async def login(
    body: Credentials, data: DataDep, services: ServicesDep, request: Request, response: Response
) -> SessionOut:
    user = await data.users.authenticate(body.username, body.password)
    if user is None:
        raise Problem(401, "invalid-credentials", "Wrong username or password")
    try:
        token = await data.sessions.create(Session(user.id, user.username, user.role))
    except REDIS_ERRORS as exc:
        raise unavailable("redis") from exc
    ttl = services.settings.session_ttl_s
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=ttl,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return SessionOut(
        token=token,
        expires_in=ttl,
        user=UserOut(
            id=user.id, username=user.username, role=user.role, created_at=user.created_at
        ),
    )


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    summary="End the session of the token or cookie sent",
)
async def logout(request: Request, data: DataDep, principal: UserDep) -> Response:
    response = Response(status_code=204)
    if principal.via == "session":
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() or request.cookies.get(SESSION_COOKIE, "")
        try:
            await data.sessions.delete(token)
        except REDIS_ERRORS as exc:
            raise unavailable("redis") from exc
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/me", response_model=UserOut, summary="Who am I")
async def me(principal: UserDep) -> UserOut:
    assert principal.user_id and principal.username
    return UserOut(id=principal.user_id, username=principal.username, role=principal.role)


@router.post(
    "/api-keys",
    status_code=201,
    response_model=NewKey,
    responses=BODY_PROBLEMS,
    summary="Create an API key (the secret is shown once)",
)
async def create_key(
    data: DataDep, principal: UserDep, body: Annotated[KeyRequest, Body()]
) -> NewKey:
    assert principal.user_id
    secret, key = await data.users.create_api_key(principal.user_id, body.name)
    return NewKey(key=secret, **_key_fields(key))


@router.get(
    "/api-keys",
    response_model=list[KeyOut],
    summary="My API keys (without secrets)",
)
async def list_keys(data: DataDep, principal: UserDep) -> list[KeyOut]:
    assert principal.user_id
    keys = await data.users.list_api_keys(principal.user_id)
    return [KeyOut(**_key_fields(k)) for k in keys]


@router.delete(
    "/api-keys/{key_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(422, 404, descriptions={404: "No such key of yours"}),
    summary="Revoke an API key",
)
async def revoke_key(
    data: DataDep, principal: UserDep, key_id: Annotated[str, Path(max_length=64)]
) -> Response:
    assert principal.user_id
    try:
        revoked = await data.users.revoke_api_key(principal.user_id, key_id)
    except psycopg.errors.InvalidTextRepresentation:
        revoked = False
    if not revoked:
        raise Problem(404, "api-key-not-found", "No such API key", key_id)
    data.api_keys.forget_user(principal.user_id)  # refused at once here, elsewhere within the TTL
    return Response(status_code=204)


def _key_fields(key: object) -> dict[str, object]:
    names = ("id", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    return {n: getattr(key, n) for n in names}
