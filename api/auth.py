"""Who is calling: a session token, an API key, or nobody (anonymous, limited by IP).

Credentials, in order: `Authorization: Bearer <token>` (a session token `mss_...` or an API key
`msk_...`), `X-API-Key: <key>`, the `memestream_session` cookie. A credential that is present
but invalid is a 401, never a silent fall back to anonymous. The client IP is the socket's peer
(put the API behind a proxy that sets it, e.g. uvicorn `--proxy-headers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.data_layer import DataLayer
from api.dependencies import ServicesDep
from api.problems import Problem, unavailable
from sinks.postgres.errors import POSTGRES_ERRORS
from sinks.postgres.users import API_KEY_PREFIX
from sinks.redis import REDIS_ERRORS
from sinks.redis.sessions import SESSION_PREFIX

SESSION_COOKIE = "memestream_session"

bearer = HTTPBearer(auto_error=False, description="A session token (mss_...) or API key (msk_...)")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key")
session_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="Session")


@dataclass(frozen=True, slots=True)
class Principal:
    ip: str
    user_id: str | None = None
    username: str | None = None
    role: str = "anonymous"
    via: str = "anonymous"

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def limit_key(self) -> str:
        return f"user:{self.user_id}" if self.user_id else f"ip:{self.ip}"


async def get_data(services: ServicesDep) -> DataLayer:
    if services.data is None:
        raise unavailable("data layer")
    return services.data


DataDep = Annotated[DataLayer, Depends(get_data)]


def unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Authentication required",
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="memestream"'},
    )


async def _resolve(token: str, data: DataLayer, ip: str) -> Principal:
    if token.startswith(API_KEY_PREFIX):
        try:
            user = await data.api_keys.resolve(token)
        except POSTGRES_ERRORS as exc:
            # Translated here, not by the app's handlers: the live feed resolves callers
            # outside them (its WebSocket takes a Problem as "anonymous").
            raise unavailable("postgres") from exc
        if user is None:
            raise unauthorized("the API key is unknown or revoked")
        return Principal(ip, user.id, user.username, user.role, "api_key")
    if token.startswith(SESSION_PREFIX):
        try:
            session = await data.sessions.get(token)
        except REDIS_ERRORS as exc:
            raise unavailable("redis") from exc
        if session is None:
            raise unauthorized("the session expired or was logged out")
        return Principal(ip, session.user_id, session.username, session.role, "session")
    raise unauthorized("the credential is neither a session token nor an API key")


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        raise unauthorized("the Authorization header must be `Bearer <token>`")
    return request.headers.get("x-api-key") or request.cookies.get(SESSION_COOKIE)


async def get_principal(request: Request) -> Principal:
    """The caller, resolved once per request (cached on `request.state`).

    A plain function of the request, without sub-dependencies: it runs on every API request
    (the rate limiter needs it), and FastAPI's per-dependency overhead is measurable there.
    The security schemes are declared on `require_user` for the OpenAPI document.
    """
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    services = request.app.state.services
    if services.data is None:
        raise unavailable("data layer")
    ip = request.client.host if request.client else "unknown"
    token = _token(request)
    principal = await _resolve(token, services.data, ip) if token else Principal(ip)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_user(
    principal: PrincipalDep,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    _key: Annotated[str | None, Depends(api_key_header)],
    _cookie: Annotated[str | None, Depends(session_cookie)],
) -> Principal:
    """An authenticated caller, or 401; the three credential forms are documented here."""
    if not principal.authenticated:
        raise unauthorized("log in or send an API key")
    return principal


UserDep = Annotated[Principal, Depends(require_user)]


async def require_admin(principal: UserDep) -> Principal:
    """An admin, else 403 (401 when not logged in): moderation review is a platform duty.

    The role is the one the credential carries (a session reads it at login, an API key on
    every request), so a user made admin logs in again before it applies.
    """
    if not principal.is_admin:
        raise Problem(403, "forbidden", "Admins only", "this needs the admin role")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
