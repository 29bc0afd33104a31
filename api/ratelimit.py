"""Rate limits per user (when authenticated) or per IP: GCRA in Redis, one round trip.

Reads (GET, HEAD) and writes have separate budgets (`RATE_LIMIT_READS_PER_MINUTE`,
`RATE_LIMIT_WRITES_PER_MINUTE`), bursts up to the per-minute budget. A refused request gets 429
problem+json with `Retry-After`; every limited response carries `RateLimit-Limit`,
`RateLimit-Remaining`, `RateLimit-Reset` and `RateLimit-Policy` (IETF draft names).
Expensive routes (AI, template uploads) also spend a budget of cost units (`charge`).
Redis down: limits fail OPEN (requests pass, unlimited) — availability of reads and generation
matters more than exact limits for the minutes Redis is away; the log says so. A busy Redis pool
first queues the check (REDIS_POOL_TIMEOUT_S); only past that deadline does it fail open, logged
as "Redis pool busy" rather than as an outage.
"""

from __future__ import annotations

import functools
import logging
import math

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import Principal, get_principal
from api.dependencies import Services
from api.problems import Problem
from domain.metrics import RATE_LIMITED
from sinks.redis import REDIS_ERRORS, describe
from sinks.redis.ratelimit import Decision

log = logging.getLogger(__name__)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def limit_headers(decision: Decision, period_s: int = 60) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(math.ceil(decision.reset_after_s)),
        "RateLimit-Policy": f"{decision.limit};w={period_s}",
    }


@functools.lru_cache(maxsize=4096)
def _raw_limit_headers(decision: Decision) -> tuple[tuple[bytes, bytes], ...]:
    """ASGI header pairs of a decision, built once: a lease's requests share one decision."""
    return tuple((k.lower().encode(), v.encode()) for k, v in limit_headers(decision).items())


async def hit(services: Services, principal: Principal, *, write: bool) -> Decision | None:
    """Counts one request of `principal` against its budget; None when limits are off or
    Redis is down (failing open). Shared by HTTP requests and WebSocket votes."""
    settings = services.settings
    if not settings.rate_limit_enabled or services.data is None:
        return None
    limit = settings.rate_limit_writes_per_minute if write else settings.rate_limit_reads_per_minute
    key = f"{'w' if write else 'r'}:{principal.limit_key}"
    try:
        decision: Decision = await services.data.limiter.hit(key, limit=limit)
    except REDIS_ERRORS as exc:
        log.warning("rate limit not applied (%s, failing open): %s", describe(exc), exc)
        return None
    if not decision.allowed:
        RATE_LIMITED.labels(scope="user" if principal.authenticated else "ip").inc()
    return decision


async def charge(request: Request, services: Services, *, units: int, what: str) -> None:
    """Spends `units` of the caller's budget for expensive routes (AI and uploads,
    RATE_LIMIT_AI_UNITS_PER_MINUTE per user, or per IP when anonymous); 429 when it is spent.

    The route prices the request (a caption by its template's boxes), so this runs in the
    handler, after the write limit. Its decision's RateLimit headers replace the write limit's
    on the response: they are the ones a client of these routes runs into. A cost above the
    whole budget is charged as the whole budget (allowed once it is full again). Redis down:
    fails open like every limit; the inference workers drop what they cannot serve in time.
    """
    settings = services.settings
    if not settings.rate_limit_enabled or services.data is None:
        return
    principal = await get_principal(request)
    budget = settings.rate_limit_ai_units_per_minute
    cost = max(1, min(units, budget))
    try:
        decision: Decision = await services.data.limiter.hit(
            f"cost:{principal.limit_key}", limit=budget, cost=cost
        )
    except REDIS_ERRORS as exc:
        log.warning("cost limit not applied (Redis unavailable, failing open): %s", exc)
        return
    request.state.rate_limit = decision
    if decision.allowed:
        return
    scope = "user" if principal.authenticated else "ip"
    RATE_LIMITED.labels(scope=scope).inc()
    raise refused(
        decision,
        "Too many expensive requests",
        f"{what} costs {cost} of {budget} units per minute per {scope}; {decision.remaining} left",
        cost=cost,
    )


def retry_after(decision: Decision) -> int:
    return max(1, math.ceil(decision.retry_after_s))


def refused(decision: Decision, title: str, detail: str, **extra: object) -> Problem:
    """The 429 of a spent budget: problem+json with Retry-After and the RateLimit headers."""
    retry = retry_after(decision)
    return Problem(
        429,
        "rate-limited",
        title,
        detail,
        headers={**limit_headers(decision), "Retry-After": str(retry)},
        retry_after=retry,
        **extra,
    )


async def rate_limit(request: Request) -> None:
    """Only the request as parameter: it runs on every API request (see `get_principal`)."""
    services = request.app.state.services
    if not services.settings.rate_limit_enabled:
        return
    principal = await get_principal(request)
    write = request.method not in READ_METHODS
    decision = await hit(services, principal, write=write)
    if decision is None:
        return
    request.state.rate_limit = decision
    if not decision.allowed:
        scope = "user" if principal.authenticated else "ip"
        kind = "writes" if write else "reads"
        raise refused(
            decision, "Too many requests", f"at most {decision.limit} {kind} per minute per {scope}"
        )


RateLimited = Depends(rate_limit)


class RateLimitHeaders:
    """Adds the RateLimit headers of the request's decision to any response (also raw ones)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = scope.get("state", {}).get("rate_limit")
                if decision is not None:
                    headers = list(message.get("headers") or [])
                    present = {k.lower() for k, _ in headers}
                    headers.extend(h for h in _raw_limit_headers(decision) if h[0] not in present)
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
