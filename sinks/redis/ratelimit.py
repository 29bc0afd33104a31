"""GCRA rate limiting in one Redis round trip (a Lua script), per user or per IP.

GCRA keeps one timestamp per key (the theoretical arrival time), so memory is O(keys) and the
answer is exact: `limit` requests per `period`, bursts up to `burst`. The script uses Redis'
clock (`TIME`), so API processes with skewed clocks agree.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass

from redis.asyncio import Redis

# KEYS[1] key; ARGV: emission interval (us), burst tolerance (us), cost.
# Returns {allowed (0/1), remaining, retry_after_us, reset_after_us}.
_GCRA = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if allow_at > now then
  local remaining = math.floor((tolerance - (tat - now)) / interval)
  if remaining < 0 then remaining = 0 end
  return {0, remaining, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
local remaining = math.floor((tolerance - (new_tat - now)) / interval)
if remaining < 0 then remaining = 0 end
return {1, remaining, 0, new_tat - now}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float
    reset_after_s: float


@dataclass(slots=True)
class _Lease:
    tokens: int
    expires: float
    decision: Decision


class RateLimiter:
    """GCRA in Redis, with small local leases for generous limits.

    With `limit >= 100` per period, one Redis call admits a lease of `limit // 100` requests
    (at most 50) that this process then spends locally for up to `lease_ttl_s`: the same
    global accounting (leased requests are counted in Redis up front, so the limit is never
    exceeded), a fraction of the round trips. An unspent lease just expires, so a client may
    be refused up to one lease early per process. Small limits (writes) never lease.

    One refill per bucket at a time: requests that find the lease spent while a refill is in
    flight wait for it and share the new lease. Without that, every concurrent request of a
    client (16 on a keep-alive pool) made its own Redis call when a lease ran out and each
    bought a whole lease, so most leased requests were counted in Redis but never served.
    """

    def __init__(self, redis: Redis, *, lease_ttl_s: float = 1.0, max_leases: int = 50_000) -> None:
        self.redis = redis
        self.lease_ttl_s = lease_ttl_s
        self.max_leases = max_leases
        self._script = redis.register_script(_GCRA)
        self._leases: dict[str, _Lease] = {}
        self._refills: dict[str, asyncio.Future[Decision]] = {}

    @staticmethod
    def lease_size(limit: int) -> int:
        return max(1, min(50, limit // 100))

    async def hit(
        self,
        key: str,
        *,
        limit: int,
        period_s: float = 60.0,
        burst: int | None = None,
        cost: int = 1,
    ) -> Decision:
        """Counts one request against `key`, weighing `cost` units of the budget (a 20-box
        caption spends more than a 2-box one); raises on Redis errors (the caller decides).
        A request that costs more than `burst` is never allowed: callers cap the cost."""
        burst = burst or limit
        # The policy is part of the key: a bucket filled under one limit never throttles
        # requests judged by another (two apps, or a changed setting).
        bucket = f"rl:{key}:{limit}:{burst}:{period_s:g}"
        if cost != 1:  # weighted requests go to Redis each time: a lease counts requests
            return await self._call(bucket, limit, period_s, burst, cost)
        size = min(self.lease_size(limit), burst)
        while size > 1:
            lease = self._leases.get(bucket)
            if lease is not None:
                if lease.tokens > 0 and lease.expires > time.monotonic():
                    lease.tokens -= 1
                    return lease.decision
                del self._leases[bucket]
            refill = self._refills.get(bucket)
            if refill is None or refill.done():  # a done one was spent by earlier waiters
                refill = asyncio.ensure_future(self._refill(bucket, limit, period_s, burst, size))
                self._refills[bucket] = refill
                refill.add_done_callback(functools.partial(self._refilled, bucket))
            # Shielded: a request that goes away must not cancel the others' refill.
            if not (await asyncio.shield(refill)).allowed:
                break  # no lease fits the budget left: judge this request alone
        return await self._call(bucket, limit, period_s, burst, 1)

    async def _refill(
        self, bucket: str, limit: int, period_s: float, burst: int, size: int
    ) -> Decision:
        """Buys a lease of `size` requests; the requests waiting on it spend it."""
        decision = await self._call(bucket, limit, period_s, burst, size)
        if decision.allowed:
            if len(self._leases) >= self.max_leases:
                self._leases.clear()
            self._leases[bucket] = _Lease(size, time.monotonic() + self.lease_ttl_s, decision)
        return decision

    def _refilled(self, bucket: str, refill: asyncio.Future[Decision]) -> None:
        if self._refills.get(bucket) is refill:
            del self._refills[bucket]
        if not refill.cancelled():
            refill.exception()  # retrieved: every waiter may have gone away

    async def _call(
        self, bucket: str, limit: int, period_s: float, burst: int, cost: int
    ) -> Decision:
        interval_us = max(1, int(period_s * 1_000_000 / limit))
        tolerance_us = interval_us * burst
        allowed, remaining, retry_us, reset_us = await self._script(
            keys=[bucket], args=[interval_us, tolerance_us, cost]
        )
        return Decision(
            allowed=bool(allowed),
            limit=limit,
            remaining=int(remaining),
            retry_after_s=int(retry_us) / 1_000_000,
            reset_after_s=int(reset_us) / 1_000_000,
        )
