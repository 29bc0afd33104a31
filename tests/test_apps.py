"""The API's command line (memestream/stack/apps.py): proxy headers believed only from
FORWARDED_ALLOW_IPS, checked on a real API by the key anonymous rate limits use."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from domain.settings import Settings
from memestream.stack.apps import HTTP_PROTOCOL, api_command
from memestream.testing.processes import memestream_api
from sinks.redis import create_redis


def test_no_proxy_is_trusted_by_default() -> None:
    argv = api_command(Settings(forwarded_allow_ips=""))
    assert "--no-proxy-headers" in argv and "--forwarded-allow-ips" not in argv
    assert argv[argv.index("--http") + 1] == HTTP_PROTOCOL
    trusted = api_command(Settings(forwarded_allow_ips="10.0.0.0/8"), ["--no-access-log"])
    at = trusted.index("--forwarded-allow-ips")
    assert trusted[at + 1] == "10.0.0.0/8" and "--proxy-headers" in trusted
    assert trusted[-1] == "--no-access-log"


def limited_env(settings: Settings) -> dict[str, str]:
    """A Redis database of its own, flushed: the loopback budget is this test's alone."""
    redis_url = settings.redis_url.rsplit("/", 1)[0] + "/10"

    async def flush() -> None:
        redis = create_redis(settings.model_copy(update={"redis_url": redis_url}))
        try:
            await redis.flushdb()
        finally:
            await redis.aclose()

    asyncio.run(flush())
    return {"REDIS_URL": redis_url, "RATE_LIMIT_READS_PER_MINUTE": "3"}


def statuses(url: str, forwarded: list[str]) -> list[int]:
    with httpx.Client(base_url=url, timeout=10) as client:
        return [
            client.get(
                "/api/search/memes", params={"q": "x"}, headers={"X-Forwarded-For": ip}
            ).status_code
            for ip in forwarded
        ]


@pytest.mark.services
def test_x_forwarded_for_from_loopback_is_ignored_by_default(stack_settings: Settings) -> None:
    """A new X-Forwarded-For per request used to reset the anonymous budget."""
    env = limited_env(stack_settings)
    with memestream_api(stack_settings, "api-no-proxy", **env) as url:
        ips = [f"203.0.113.{i}" for i in range(1, 6)]
        assert statuses(url, ips) == [200, 200, 200, 429, 429]  # one budget: the peer's


@pytest.mark.services
def test_x_forwarded_for_counts_from_a_trusted_proxy(stack_settings: Settings) -> None:
    env = limited_env(stack_settings) | {"FORWARDED_ALLOW_IPS": "127.0.0.1"}
    with memestream_api(stack_settings, "api-proxy", **env) as url:
        fresh = [f"198.51.100.{i}" for i in range(1, 6)]
        assert statuses(url, fresh) == [200] * 5  # a budget per forwarded client
        same = [f"192.0.2.{uuid.uuid4().int % 200 + 1}"] * 4
        assert statuses(url, same) == [200, 200, 200, 429]
