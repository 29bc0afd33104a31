"""Rate limits (GCRA in Redis, one round trip): 429 + Retry-After + RateLimit headers, per IP
for anonymous callers and per user when authenticated, failing open when Redis is down.

The app here runs on Redis database 9, flushed first, so other suites' traffic (all from
127.0.0.1 or `testclient`) never shares its budgets.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from domain.settings import Settings
from sinks.redis import create_redis
from sinks.redis.ratelimit import RateLimiter
from tests.data_helpers import register

DRAKE = {"template_id": "drake", "texts": ["a", "b"]}
BIG = 20  # boxes of the expensive template


def private_redis(settings: Settings) -> Settings:
    base = settings.redis_url.rsplit("/", 1)[0]
    return settings.model_copy(update={"redis_url": f"{base}/9"})


def flush(settings: Settings) -> None:
    async def run() -> None:
        redis = create_redis(settings)
        try:
            await redis.flushdb()
        finally:
            await redis.aclose()

    asyncio.run(run())


def counting_limiter(redis: Any) -> tuple[RateLimiter, list[int]]:
    """A limiter whose Redis script calls are counted in the returned one-item list."""
    limiter = RateLimiter(redis)
    calls = [0]
    script = limiter._script

    async def counted(**kwargs: Any) -> Any:
        calls[0] += 1
        return await script(**kwargs)

    limiter._script = counted  # type: ignore[assignment]
    return limiter, calls


@pytest.fixture
def limited(stack_settings: Settings) -> Iterator[TestClient]:
    settings = private_redis(stack_settings).model_copy(
        update={"rate_limit_writes_per_minute": 3, "rate_limit_reads_per_minute": 4}
    )
    flush(settings)
    with TestClient(create_app(settings)) as client:
        yield client


async def test_gcra_allows_the_budget_then_refuses_with_retry_after(
    stack_settings: Settings,
) -> None:
    settings = private_redis(stack_settings)
    redis = create_redis(settings)
    try:
        await redis.delete("rl:unit:5:5:60")
        limiter = RateLimiter(redis)
        decisions = [await limiter.hit("unit", limit=5, period_s=60) for _ in range(6)]
    finally:
        await redis.aclose()
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert 11 < decisions[5].retry_after_s <= 12.1  # one emission interval: 60 s / 5


def test_429_problem_with_headers_then_separate_budgets(
    limited: TestClient,
) -> None:
    reads = [limited.get("/api/search/memes", params={"q": "x"}) for _ in range(5)]
    assert [r.status_code for r in reads] == [200, 200, 200, 200, 429]
    assert reads[0].headers["ratelimit-limit"] == "4"
    assert reads[0].headers["ratelimit-remaining"] == "3"
    assert reads[0].headers["ratelimit-policy"] == "4;w=60"
    refused = reads[4]
    assert refused.headers["content-type"].startswith("application/problem+json")
    body = refused.json()
    assert body["type"].endswith("/rate-limited") and body["status"] == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"
    # Writes have their own budget; headers also reach raw (non-JSON-model) responses.
    accepted = limited.post("/api/meme/generate", json=DRAKE)
    assert accepted.status_code == 202 and accepted.headers["ratelimit-limit"] == "3"


@pytest.fixture
def priced(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """AI routes and uploads on a budget of 30 units a minute; no inference worker listens on
    its subjects, so the heuristics answer at once (the price is the same)."""
    settings = private_redis(stack_settings).model_copy(
        update={
            "rate_limit_ai_units_per_minute": 30,
            "rate_limit_upload_units": 1,
            "inference_subject": f"memestream-test-{uuid.uuid4().hex[:8]}.inference",
            "upload_tmp_dir": tmp_path_factory.mktemp("priced-uploads"),
        }
    )
    flush(settings)
    with TestClient(create_app(settings)) as client:
        yield client


def _big_template(client: TestClient, headers: dict[str, str]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 40 * BIG), (90, 90, 200)).save(buffer, "PNG")
    boxes = [{"x": 10, "y": 40 * i + 5, "width": 380, "height": 30} for i in range(BIG)]
    response = client.post(
        "/api/templates",
        headers=headers,
        data={"name": f"Tall {uuid.uuid4().hex[:6]}", "boxes": json.dumps(boxes)},
        files={"file": ("t.png", buffer.getvalue(), "image/png")},
    )
    assert response.status_code == 201, response.text
    assert response.headers["ratelimit-limit"] == "30"  # the upload spent the cost budget
    return response.json()["id"]


def test_ai_routes_spend_a_budget_weighted_by_cost(priced: TestClient) -> None:
    user = register(priced, "rlai")
    priced.cookies.clear()
    headers = user["headers"]
    big = _big_template(priced, headers)  # 1 unit: 29 left

    def caption(template_id: str) -> Any:
        body = {"template_id": template_id, "topic": "costs"}
        return priced.post("/api/meme/caption", json=body, headers=headers)

    small = caption("drake")  # 2 boxes
    assert small.status_code == 200 and small.headers["ratelimit-limit"] == "30"
    assert small.headers["ratelimit-policy"] == "30;w=60"
    large = caption(big)  # 20 boxes
    assert large.status_code == 200 and len(large.json()["texts"]) == BIG
    spent_small = 29 - int(small.headers["ratelimit-remaining"])
    spent_large = int(small.headers["ratelimit-remaining"]) - int(
        large.headers["ratelimit-remaining"]
    )
    assert (spent_small, spent_large) == (2, BIG)  # a 20-box caption costs ten 2-box ones
    refused = caption(big)  # 7 units left: not enough for 20
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    body = refused.json()
    assert body["type"].endswith("/rate-limited") and body["cost"] == BIG
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "7"
    assert caption("drake").status_code == 200  # a cheaper one still fits
    # Anonymous callers have a budget per IP; a suggestion costs a fixed 2 units.
    suggestions = [priced.post("/api/templates/suggest", json={"text": "cats"}) for _ in range(16)]
    assert [r.status_code for r in suggestions] == [200] * 15 + [429]
    assert suggestions[0].headers["ratelimit-remaining"] == "28"


def test_authenticated_users_are_limited_per_user_not_per_ip(limited: TestClient) -> None:
    name = "rl_user_" + uuid.uuid4().hex[:8]
    credentials = {"username": name, "password": "correct horse battery"}
    assert limited.post("/api/auth/register", json=credentials).status_code == 201
    token = limited.post("/api/auth/login", json=credentials).json()["token"]
    limited.cookies.clear()
    assert limited.post("/api/meme/generate", json=DRAKE).status_code == 202
    assert limited.post("/api/meme/generate", json=DRAKE).status_code == 429  # the IP's 4th
    as_user = {"Authorization": f"Bearer {token}"}
    assert limited.post("/api/meme/generate", json=DRAKE, headers=as_user).status_code == 202


def test_limits_fail_open_when_redis_is_down(stack_settings: Settings) -> None:
    settings = stack_settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0", "rate_limit_reads_per_minute": 1}
    )
    with TestClient(create_app(settings)) as client:
        answers = [client.get("/api/search/memes", params={"q": "x"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "ratelimit-limit" not in answers[0].headers


async def test_generous_limits_lease_tokens_without_exceeding_the_limit(
    stack_settings: Settings,
) -> None:
    settings = private_redis(stack_settings)
    redis = create_redis(settings)
    key = f"lease-{uuid.uuid4().hex[:6]}"
    try:
        limiter, calls = counting_limiter(redis)
        assert limiter.lease_size(1000) == 10
        decisions = [await limiter.hit(key, limit=1000, burst=25) for _ in range(30)]
        # 10 + 10 leased, then the burst (25) allows only 5 more: 1 each.
        assert [d.allowed for d in decisions] == [True] * 25 + [False] * 5
        assert calls[0] < 30
        # Another process (a second limiter) sees the same, exhausted budget.
        other = RateLimiter(redis)
        assert not (await other.hit(key, limit=1000, burst=25)).allowed
    finally:
        await redis.aclose()


async def test_concurrent_requests_share_one_lease_refill(stack_settings: Settings) -> None:
    """Requests that find the lease spent together wait for one refill: a Redis call each
    would buy (and count against the client) a whole lease per request."""
    settings = private_redis(stack_settings)
    redis = create_redis(settings)
    key = f"herd-{uuid.uuid4().hex[:6]}"
    try:
        limiter, calls = counting_limiter(redis)
        decisions = await asyncio.gather(*(limiter.hit(key, limit=1000) for _ in range(20)))
        assert all(d.allowed for d in decisions)
        assert calls[0] == 2  # two leases of 10 served the 20 requests
        # Redis counted 20 requests (and now the other limiter's lease of 10), not 20 leases.
        left = (await RateLimiter(redis).hit(key, limit=1000)).remaining
        assert left >= 1000 - 20 - 10
    finally:
        await redis.aclose()


async def test_a_failed_refill_fails_every_waiting_request(stack_settings: Settings) -> None:
    """The callers fail open on the error; one Redis call, not one per waiting request."""
    redis = create_redis(private_redis(stack_settings))
    try:
        limiter = RateLimiter(redis)
        calls = 0

        async def broken(**kwargs):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.01)
            raise ConnectionError("redis is away")

        limiter._script = broken  # type: ignore[assignment]
        key = f"down-{uuid.uuid4().hex[:6]}"
        outcomes = await asyncio.gather(
            *(limiter.hit(key, limit=1000) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(o, ConnectionError) for o in outcomes)
        assert calls == 1
    finally:
        await redis.aclose()
