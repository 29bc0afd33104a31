"""Trace users' credentials: one API key per trace user, provisioned before a replay.

Replays authenticate each trace user so rate limits apply per user, as in production, instead
of one client IP's budget measuring the limiter. Why provision in PostgreSQL (the platform's own
`UserRepository`) rather than register and log in through the API: each registration and login
is an argon2 hash on the server (slow on purpose), and the per-IP write limit (120/min) would
stretch setting up 1,000 users over 25 minutes of work the trace does not contain.

The accounts are key-only (`loadgen-<trace user>`, no password matches) and reused across runs;
each run's keys are named for the run and revoked when it ends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from domain.settings import Settings
from sinks.postgres.pool import create_pool
from sinks.postgres.users import UserRepository

USERNAME_PREFIX = "loadgen-"
#: Connections used to provision: enough to overlap round trips, few enough to stay polite.
_CONNECTIONS = 4


@dataclass(slots=True)
class Accounts:
    """API key per trace user, and what `revoke` needs to take them back."""

    run_id: str
    keys: dict[str, str] = field(default_factory=dict)  # trace user -> secret
    key_ids: list[tuple[str, str]] = field(default_factory=list)  # (user id, key id)


def _settings_for_pool(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"database_pool_size": min(_CONNECTIONS, settings.database_pool_size)}
    )


async def provision(settings: Settings, users: Iterable[str], run_id: str = "") -> Accounts:
    """A fresh API key for each of `users` (their accounts created when absent)."""
    accounts = Accounts(run_id or uuid.uuid4().hex[:8])
    pool = create_pool(_settings_for_pool(settings), min_size=_CONNECTIONS)
    await pool.open(wait=True)
    try:
        repo = UserRepository(pool)
        gate = asyncio.Semaphore(_CONNECTIONS)

        async def one(user: str) -> None:
            async with gate:
                account = await repo.ensure_key_only(f"{USERNAME_PREFIX}{user}")
                secret, key = await repo.create_api_key(account.id, f"loadgen {accounts.run_id}")
            accounts.keys[user] = secret
            accounts.key_ids.append((account.id, key.id))

        await asyncio.gather(*(one(u) for u in sorted(set(users))))
    finally:
        await pool.close()
    return accounts


async def revoke(settings: Settings, accounts: Accounts) -> int:
    """Revokes the run's keys; how many were revoked."""
    pool = create_pool(_settings_for_pool(settings), min_size=_CONNECTIONS)
    await pool.open(wait=True)
    try:
        repo = UserRepository(pool)
        gate = asyncio.Semaphore(_CONNECTIONS)

        async def one(user_id: str, key_id: str) -> bool:
            async with gate:
                return await repo.revoke_api_key(user_id, key_id)

        done = await asyncio.gather(*(one(u, k) for u, k in accounts.key_ids))
    finally:
        await pool.close()
    return sum(done)
