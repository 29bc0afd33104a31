"""PostgreSQL starved or far away, on the PRIVATE stack: clear 503s, then recovery."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from domain.ids import new_id
from memestream.testing.private_stack import PrivateStack, Proc
from tests.chaos.proxy import ChaosProxy
from tests.chaos.support import DONE, generate, wait_rendered

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]


def _is_problem_503(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and "retry-after" in response.headers
        and response.headers.get("content-type", "").startswith("application/problem+json")
    )


def test_exhausted_pool_answers_503_with_retry_after_and_recovers(
    private_stack: PrivateStack,
) -> None:
    stack = private_stack
    url, api = stack.api("api-small-pool", DATABASE_POOL_SIZE="2")
    lock = psycopg.connect(stack.settings.database_url)
    try:
        # Every read of the memes table now waits: two requests hold the whole pool.
        lock.execute("LOCK TABLE memes IN ACCESS EXCLUSIVE MODE")
        with httpx.Client(base_url=url, timeout=30) as client, ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(client.get, f"/api/meme/{new_id()}") for _ in range(8)]
            deadline = time.monotonic() + 15  # 6 give up after the 5 s pool timeout
            while sum(f.done() for f in futures) < 6 and time.monotonic() < deadline:
                time.sleep(0.1)
            done = {f for f in futures if f.done()}
            health = client.get("/health")
            lock.rollback()  # the held requests finish now
            starved = [f.result() for f in done]
            held = [f.result(timeout=20) for f in futures if f not in done]
            started = time.monotonic()
            after = [client.get(f"/api/meme/{new_id()}") for _ in range(5)]
            recovery_s = time.monotonic() - started
    finally:
        lock.close()
        stack.kill(api)
    codes = sorted(r.status_code for r in starved + held)
    print(f"\npool of 2 exhausted: {codes}; after release {[r.status_code for r in after]}")
    assert health.status_code == 200, "the API itself stays up"
    assert sum(_is_problem_503(r) for r in starved) >= 4, codes
    assert all(r.status_code in {404, 503} for r in starved + held), codes
    assert [r.status_code for r in after] == [404] * 5 and recovery_s < 5


def test_slow_then_cut_network_to_postgres(
    private_stack: PrivateStack, chaos_api: str, chaos_worker: Proc
) -> None:
    """API -> proxy -> PostgreSQL; the worker talks to PostgreSQL directly."""
    stack = private_stack
    db = urlsplit(stack.settings.database_url)
    with ChaosProxy("127.0.0.1", int(db.port or 5432)) as proxy:
        proxied = urlunsplit(db._replace(netloc=f"{db.netloc.rsplit(':', 1)[0]}:{proxy.port}"))
        url, api = stack.api("api-proxied", DATABASE_URL=proxied)
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                before, _ = generate(client, 1, "SLOW NET")
                assert wait_rendered(stack.settings.database_url, before, timeout=60)

                proxy.delay_s = 0.3
                started = time.monotonic()
                slow = client.get(f"/api/meme/{new_id()}")
                slow_s = time.monotonic() - started

                proxy.cut()
                started = time.monotonic()
                cut_read = client.get(f"/api/meme/{new_id()}")
                cut_s = time.monotonic() - started
                during, statuses = generate(client, 3, "CUT NET")

                proxy.restore()
                proxy.delay_s = 0.0
                found = wait_rendered(stack.settings.database_url, during, timeout=60)
                deadline = time.monotonic() + 30
                reads: list[httpx.Response] = []
                while time.monotonic() < deadline:
                    reads = [client.get(f"/api/meme/{m}") for m in during]
                    if all(r.status_code == 200 for r in reads):
                        break
                    time.sleep(0.5)
        finally:
            stack.kill(api)
    print(
        f"\nslow network: read {slow.status_code} in {slow_s:.2f} s; cut: read "
        f"{cut_read.status_code} in {cut_s:.2f} s, generate {statuses}; "
        f"proxy refused {proxy.refused} connections"
    )
    assert slow.status_code == 404 and slow_s >= 0.3
    assert _is_problem_503(cut_read) and cut_s < 15, (cut_read.status_code, cut_s)
    assert statuses == {202: 3}, "generation does not need PostgreSQL"
    assert set(found.values()) <= DONE and len(found) == 3
    for meme_id, response in zip(during, reads, strict=True):
        body = response.json()
        assert body["status"] in DONE and body["texts"][0] == "CUT NET", (meme_id, body)
