"""Trace users' API keys, provisioned in the real PostgreSQL and used against the real API."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from domain.settings import Settings
from loadgen.accounts import USERNAME_PREFIX, provision, revoke
from sinks.postgres.pool import create_pool
from sinks.postgres.users import UserRepository

pytestmark = pytest.mark.services


async def _me(api_url: str, key: str) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{api_url}/api/auth/me", headers={"authorization": f"Bearer {key}"}) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_each_trace_user_gets_a_working_key_until_the_run_revokes_it(
    stack_settings: Settings, api_url: str
) -> None:
    users = ["u00001", "u00002", "u00003"]
    first = await provision(stack_settings, users)
    again = await provision(stack_settings, users[:1])  # accounts are reused across runs
    try:
        assert sorted(first.keys) == users and len(first.key_ids) == 3
        assert first.keys["u00001"] != again.keys["u00001"]
        status, me = await _me(api_url, first.keys["u00002"])
        assert status == 200 and me["username"] == f"{USERNAME_PREFIX}u00002"
        ids = {
            (await _me(api_url, k))[1]["id"] for k in (first.keys["u00001"], again.keys["u00001"])
        }
        assert len(ids) == 1, "a second run reuses the user, with a new key"
    finally:
        assert await revoke(stack_settings, first) == 3
        assert await revoke(stack_settings, again) == 1
    # Revoked in PostgreSQL, not through this API: its key cache (api/api_key_cache.py)
    # refuses the key within API_KEY_CACHE_TTL_S.
    deadline = time.monotonic() + stack_settings.api_key_cache_ttl_s + 5
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = (await _me(api_url, first.keys["u00002"]))[0]
        if status == 200:
            await asyncio.sleep(0.5)
    assert status == 401


async def test_key_only_accounts_refuse_every_password(stack_settings: Settings) -> None:
    pool = create_pool(stack_settings)
    await pool.open(wait=True)
    try:
        repo = UserRepository(pool)
        user = await repo.ensure_key_only(f"{USERNAME_PREFIX}pw-check")
        assert (await repo.ensure_key_only(f"{USERNAME_PREFIX}PW-check")).id == user.id
        for password in ("", "!key-only", "memestream-timing-equaliser"):
            assert await repo.authenticate(user.username, password) is None
    finally:
        await pool.close()
