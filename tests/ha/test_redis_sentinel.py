"""Redis master, replica and three Sentinels: SIGKILL the master, writes resume on the replica.

The client is the platform's own (`create_redis` in Sentinel mode), so this also shows that
its queued pool (`PoolBusy`) works the same when Sentinel picks the server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis

from memestream.stack.ha import HaStack
from memestream.stack.process import wait_until
from memestream.stack.redis import RedisServer
from sinks.redis.client import REDIS_ERRORS, PoolBusy, SentinelQueuedPool, create_redis
from tests.ha.support import started

pytestmark = [pytest.mark.ha, pytest.mark.slow]

NODES = ["redis-master", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"]
FAILOVER_LIMIT_S = 30.0  # the bound for any failover


@pytest.fixture(scope="module")
def redis_ha(ha_stack: HaStack) -> Iterator[HaStack]:
    with started(ha_stack, NODES) as stack:
        wait_until(lambda: watching(ha_stack), 60, what="Sentinels see the replica and each other")
        yield stack


def sentinel_view(stack: HaStack, port: int) -> dict[str, str]:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True)
    try:
        reply = client.execute_command("SENTINEL", "MASTER", stack.settings.redis_sentinel_master)
    finally:
        client.close()
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    return dict(zip(reply[::2], reply[1::2], strict=True))


def watching(stack: HaStack) -> bool:
    """Every Sentinel knows the replica and the two other Sentinels: a failover can happen."""
    views = [sentinel_view(stack, port) for port in stack.ports.sentinels]
    return all(int(v["num-slaves"]) >= 1 and int(v["num-other-sentinels"]) == 2 for v in views)


def master_port(stack: HaStack, sentinel: int) -> int:
    client = redis.Redis(host="127.0.0.1", port=sentinel, socket_timeout=2)
    try:
        _, port = client.sentinel_get_master_addr_by_name(stack.settings.redis_sentinel_master)
    finally:
        client.close()
    return int(port)


async def test_sentinel_pool_queues_and_raises_pool_busy(redis_ha: HaStack) -> None:
    settings = redis_ha.settings.model_copy(update={"redis_pool_size": 1})
    client = create_redis(settings, pool_timeout_s=0.2)
    pool = client.connection_pool
    assert isinstance(pool, SentinelQueuedPool)
    try:
        assert await client.ping()
        held = await pool.get_connection()
        assert (held.host, held.port) == ("127.0.0.1", redis_ha.ports.redis_master)
        with pytest.raises(PoolBusy):
            await pool.get_connection()
        await pool.release(held)
        assert await client.ping()  # the released connection serves again
    finally:
        await client.aclose()


async def test_master_sigkill_fails_over_to_the_replica(redis_ha: HaStack) -> None:
    client = create_redis(redis_ha.settings, timeout_s=0.5)
    try:
        await client.set("ha:before", "kept")
        # WAIT for the replica, in steps shorter than the client's 0.5 s socket timeout.
        acked = 0
        for _ in range(20):
            acked = await client.wait(1, 300)
            if acked:
                break
        assert acked == 1, "the replica did not confirm the write"
        master = redis_ha.services["redis-master"]
        assert isinstance(master, RedisServer)
        proc = master.process()
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        failures = 0
        recovered: float | None = None
        while time.monotonic() - killed < FAILOVER_LIMIT_S * 2:
            try:
                await client.set("ha:after", str(failures))
            except REDIS_ERRORS:
                failures += 1
                await asyncio.sleep(0.1)
                continue
            recovered = time.monotonic()
            break
        assert recovered is not None, "no write succeeded after the master was killed"
        unavailable = recovered - killed
        print(
            f"\nHA redis_master_sigkill: writes failed for {unavailable:.2f} s "
            f"({failures} failed attempts), then went to the promoted replica"
        )
        assert unavailable < FAILOVER_LIMIT_S
        # The Sentinel that answered the client knew first; the others learn it from it.
        wait_until(
            lambda: all(
                master_port(redis_ha, port) == redis_ha.ports.redis_replica
                for port in redis_ha.ports.sentinels
            ),
            15,
            what="every Sentinel names the promoted replica",
        )
        assert await client.get("ha:before") == b"kept", "a replicated write was lost"
    finally:
        await client.aclose()
