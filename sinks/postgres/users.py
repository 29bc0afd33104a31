"""Users and API keys in PostgreSQL: argon2 password hashes, API keys stored as SHA-256.

Why two hashes: passwords are low-entropy and need a slow, salted hash (argon2id); API keys are
256-bit random secrets, so a fast hash is safe and keeps per-request authentication one index
probe. A key is shown once, at creation; only its hash and a short display prefix are kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg_pool import AsyncConnectionPool

from domain.ids import new_id

API_KEY_PREFIX = "msk_"
#: How often a key's `last_used_at` is refreshed (a key used all day is marked once a minute).
KEY_USE_MARK_EVERY = timedelta(minutes=1)
_hasher = PasswordHasher()
# Verified when the user is unknown, so a login costs the same whether or not the name exists.
_DUMMY_HASH = _hasher.hash("memestream-timing-equaliser")
#: The stored hash of a key-only account: not an argon2 hash, so no password verifies.
NO_PASSWORD = "!key-only"


class UsernameTaken(ValueError):
    """Another user already has this name (case-insensitively)."""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    role: str
    email: str | None
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> User:
        return cls(
            id=str(row["id"]),
            username=row["username"],
            role=row["role"],
            email=row["email"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


_USER_COLUMNS = "id, username, role, email, created_at"


class UserRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(
        self, username: str, password: str, *, email: str | None = None, role: str = "user"
    ) -> User:
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        try:
            async with self.pool.connection() as conn:
                cursor = await conn.execute(
                    "INSERT INTO users (id, username, email, password_hash, role)"
                    f" VALUES (%s, %s, %s, %s, %s) RETURNING {_USER_COLUMNS}",
                    (new_id(), username, email, password_hash, role),
                )
                row = await cursor.fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise UsernameTaken(username) from exc
        assert row is not None
        return User.from_row(row)

    async def ensure_key_only(self, username: str) -> User:
        """The user `username`, created if absent as an account that signs in with API keys only.

        Its stored hash is not an argon2 hash, so no password ever matches (`authenticate`
        refuses it) and creating it costs no password hashing: the load generator's trace users.
        """
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO users (id, username, password_hash) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (new_id(), username, NO_PASSWORD),
            )
            cursor = await conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE lower(username) = lower(%s)",
                (username,),
            )
            row = await cursor.fetchone()
        assert row is not None
        return User.from_row(row)

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user if the password matches; None otherwise (constant work either way)."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_USER_COLUMNS}, password_hash FROM users"
                " WHERE lower(username) = lower(%s) AND disabled_at IS NULL",
                (username,),
            )
            row = await cursor.fetchone()
        stored = row["password_hash"] if row else _DUMMY_HASH
        try:
            await asyncio.to_thread(_hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if _hasher.check_needs_rehash(stored):
            await self._rehash(str(row["id"]), password)
        return User.from_row(row)

    async def _rehash(self, user_id: str, password: str) -> None:
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id)
            )

    async def get(self, user_id: str) -> User | None:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE id = %s AND disabled_at IS NULL",
                (user_id,),
            )
            row = await cursor.fetchone()
        return User.from_row(row) if row else None

    async def set_role(self, user_id: str, role: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE users SET role = %s WHERE id = %s", (role, user_id))

    async def create_api_key(self, user_id: str, name: str) -> tuple[str, ApiKey]:
        """(the secret, shown once; its stored description)."""
        secret = new_api_key()
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO api_keys (id, user_id, name, prefix, key_hash)"
                " VALUES (%s, %s, %s, %s, %s)"
                " RETURNING id, name, prefix, created_at, last_used_at, revoked_at",
                (new_id(), user_id, name, secret[: len(API_KEY_PREFIX) + 6], hash_key(secret)),
            )
            row = await cursor.fetchone()
        assert row is not None
        return secret, ApiKey(**{**row, "id": str(row["id"])})

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys"
                " WHERE user_id = %s ORDER BY created_at DESC",
                (user_id,),
            )
            rows = await cursor.fetchall()
        return [ApiKey(**{**r, "id": str(r["id"])}) for r in rows]

    async def revoke_api_key(self, user_id: str, key_id: str) -> bool:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
                " WHERE id = %s AND user_id = %s",
                (key_id, user_id),
            )
        return cursor.rowcount > 0

    async def by_api_key(self, secret: str) -> User | None:
        """The owner of a live key; marks the key used (at most once a minute per key)."""
        if not secret.startswith(API_KEY_PREFIX):
            return None
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT u.id, u.username, u.role, u.email, u.created_at, k.id AS key_id,"
                " k.last_used_at FROM api_keys k JOIN users u ON u.id = k.user_id"
                " WHERE k.key_hash = %s AND k.revoked_at IS NULL AND u.disabled_at IS NULL",
                (hash_key(secret),),
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            # Only a stale mark costs a second round trip: at a few hundred requests/s with
            # keys, the UPDATE that changed nothing was half of the pool's work (the burst load
            # run emptied the 10-connection pool: 503s on votes and reads).
            used = row["last_used_at"]
            if used is None or datetime.now(UTC) - used > KEY_USE_MARK_EVERY:
                await conn.execute(
                    "UPDATE api_keys SET last_used_at = now() WHERE id = %s"
                    " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
                    (row["key_id"],),
                )
        return User.from_row(row)
