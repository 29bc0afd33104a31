"""api/api_key_cache.py against the real PostgreSQL: one query per key per TTL, revocations
through the process at once, elsewhere within the TTL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from api.api_key_cache import ApiKeyCache
from domain.settings import Settings
from sinks.postgres.errors import POSTGRES_ERRORS
from sinks.postgres.pool import create_pool
from sinks.postgres.users import User, UserRepository


class CountingUsers(UserRepository):
    """The real repository, counting the key lookups that reach PostgreSQL."""

    lookups = 0

    async def by_api_key(self, secret: str) -> User | None:
        self.lookups += 1
        return await super().by_api_key(secret)


@pytest.fixture
async def users(stack_settings: Settings) -> AsyncIterator[CountingUsers]:
    pool: AsyncConnectionPool = create_pool(stack_settings)
    await pool.open()
    try:
        yield CountingUsers(pool)
    finally:
        await pool.close()


async def _user_with_key(users: UserRepository) -> tuple[User, str, str]:
    user = await users.create(f"kc_{uuid.uuid4().hex[:10]}", "key cache password 1")
    secret, key = await users.create_api_key(user.id, "bot")
    return user, secret, key.id


async def test_a_key_is_looked_up_once_per_ttl(users: CountingUsers) -> None:
    user, secret, _ = await _user_with_key(users)
    cache = ApiKeyCache(users, ttl_s=60, size=100)
    first = await cache.resolve(secret)
    assert first is not None and first.id == user.id
    for _ in range(50):
        assert await cache.resolve(secret) == first
    assert users.lookups == 1


async def test_concurrent_requests_with_a_new_key_share_one_query(users: CountingUsers) -> None:
    user, secret, _ = await _user_with_key(users)
    cache = ApiKeyCache(users, ttl_s=60, size=100)
    answers = await asyncio.gather(*(cache.resolve(secret) for _ in range(40)))
    assert {a.id for a in answers if a is not None} == {user.id} and None not in answers
    assert users.lookups == 1


async def test_unknown_keys_are_kept_too(users: CountingUsers) -> None:
    cache = ApiKeyCache(users, ttl_s=60, size=100)
    made_up = "msk_" + uuid.uuid4().hex
    assert await cache.resolve(made_up) is None
    assert await cache.resolve(made_up) is None
    assert users.lookups == 1


async def test_a_revocation_elsewhere_takes_effect_within_the_ttl(users: CountingUsers) -> None:
    user, secret, key_id = await _user_with_key(users)
    cache = ApiKeyCache(users, ttl_s=0.3, size=100)
    assert await cache.resolve(secret) is not None
    assert await users.revoke_api_key(user.id, key_id)  # another replica, say
    await asyncio.sleep(0.4)
    assert await cache.resolve(secret) is None
    assert users.lookups == 2


async def test_forget_user_drops_only_that_users_keys(users: CountingUsers) -> None:
    user, secret, key_id = await _user_with_key(users)
    other, other_secret, _ = await _user_with_key(users)
    cache = ApiKeyCache(users, ttl_s=60, size=100)
    assert await cache.resolve(secret) is not None
    assert await cache.resolve(other_secret) is not None
    assert await users.revoke_api_key(user.id, key_id)
    cache.forget_user(user.id)  # what the revoke route does
    assert await cache.resolve(secret) is None
    resolved = await cache.resolve(other_secret)
    assert resolved is not None and resolved.id == other.id
    assert users.lookups == 3


async def test_ttl_zero_asks_postgres_every_time(users: CountingUsers) -> None:
    _, secret, _ = await _user_with_key(users)
    cache = ApiKeyCache(users, ttl_s=0, size=100)
    for _ in range(3):
        assert await cache.resolve(secret) is not None
    assert users.lookups == 3


async def test_a_failed_lookup_is_not_kept(users: CountingUsers) -> None:
    """PostgreSQL unreachable: the error reaches the caller (a 503) and the next request asks
    again instead of finding a cached failure."""
    _, secret, _ = await _user_with_key(users)
    closed = CountingUsers(users.pool)
    cache = ApiKeyCache(closed, ttl_s=60, size=100)
    await users.pool.close()  # the fixture's pool: its close at teardown is a no-op then
    for _ in range(2):
        with pytest.raises(POSTGRES_ERRORS):
            await cache.resolve(secret)
    assert closed.lookups == 2
