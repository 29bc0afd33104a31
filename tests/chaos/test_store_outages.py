"""Stores going away under load, on PRIVATE instances: degrade, never lose or corrupt.

Order matters inside this module: the Kafka restart runs last, the others share one API
and one render worker.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import httpx
import psycopg
import pytest

from tests.chaos.private import PrivateStack, Proc
from tests.chaos.support import (
    DONE,
    decodes,
    final_objects,
    generate,
    objects,
    rows,
    wait_rendered,
)

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]


def _all_stored(stack: PrivateStack, ids: list[str]) -> None:
    for meme_id in ids:
        stored = final_objects(objects(stack, meme_id))
        assert len(stored) == 3 and all(decodes(p) for p in stored), (meme_id, stored)


def test_postgres_down_generation_accepted_and_persisted_when_back(
    private_stack: PrivateStack, chaos_api: str, chaos_worker: Proc
) -> None:
    stack = private_stack
    stack.stop(["postgres"])
    try:
        with httpx.Client(base_url=chaos_api, timeout=20) as client:
            ids, statuses = generate(client, 10, "PG DOWN")
            read = client.get(f"/api/meme/{ids[0]}") if ids else None
            health = client.get("/health")
    finally:
        stack.start(["postgres"])
    print(f"\nPostgreSQL down: generate {statuses}, read {read and read.status_code}")
    assert statuses == {202: 10}, "generation is accepted into Kafka while PostgreSQL is down"
    assert health.status_code == 200
    assert read is not None and read.status_code == 503 and "retry-after" in read.headers
    found = wait_rendered(stack.settings.database_url, ids, timeout=90)
    assert len(found) == 10 and set(found.values()) <= DONE, found
    _all_stored(stack, ids)
    assert chaos_worker.alive()


def _login(client: httpx.Client, name: str) -> dict[str, str]:
    credentials = {"username": name, "password": "chaos-password-1"}
    assert client.post("/api/auth/register", json=credentials).status_code in {200, 201}
    token = client.post("/api/auth/login", json=credentials).json()["token"]
    return {"authorization": f"Bearer {token}"}


def test_redis_down_for_30s_api_stays_up_and_no_vote_is_lost(
    private_stack: PrivateStack, chaos_api: str, chaos_worker: Proc
) -> None:
    stack = private_stack
    with httpx.Client(base_url=chaos_api, timeout=20) as client:
        if client.get("/openapi.json").json()["paths"].get("/api/meme/{meme_id}/vote") is None:
            pytest.skip("no votes endpoint yet (issue 4)")
        memes, _ = generate(client, 3, "VOTE ME")
        assert len(wait_rendered(stack.settings.database_url, memes, timeout=60)) == 3
        users = [_login(client, f"chaos-{uuid.uuid4().hex[:8]}") for _ in range(6)]

    acked: dict[tuple[int, str], int] = {}  # (user, meme) -> last acknowledged value
    statuses: Counter[str] = Counter()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=chaos_api, timeout=20) as client:
            i = 0
            while not stop.is_set():
                user, meme = i % len(users), memes[i % len(memes)]
                value = 1 if (i // len(users)) % 2 == 0 else -1
                try:
                    vote = client.post(
                        f"/api/meme/{meme}/vote", json={"value": value}, headers=users[user]
                    )
                    statuses[f"vote {vote.status_code}"] += 1
                    if vote.status_code < 300:
                        acked[(user, meme)] = value
                    trending = client.get("/api/meme/trending")
                    statuses[f"trending {trending.status_code}"] += 1
                    read = client.get(f"/api/meme/{meme}")
                    statuses[f"read {read.status_code}"] += 1
                    if read.status_code >= 500 and read.status_code != 503:
                        statuses["read 5xx other than 503"] += 1
                except httpx.HTTPError as exc:
                    statuses[f"transport {type(exc).__name__}"] += 1
                i += 1
                time.sleep(0.1)

    sender = threading.Thread(target=load)
    sender.start()
    time.sleep(2)
    stack.stop(["redis"])
    during_start = sum(statuses.values())
    try:
        time.sleep(30)
        during = Counter(statuses)
    finally:
        stack.start(["redis"])
    time.sleep(5)
    stop.set()
    sender.join(timeout=30)

    print(f"\nRedis down 30 s: {dict(statuses)} ({sum(during.values()) - during_start} during)")
    assert not any(k.startswith("transport") for k in statuses), statuses
    assert statuses["read 5xx other than 503"] == 0
    assert during["trending 200"] > 0, "trending stays up (degraded) without Redis"
    with psycopg.connect(stack.settings.database_url) as conn:
        stored = dict(
            conn.execute(
                "SELECT meme_id::text || '/' || user_id::text, value FROM votes "
                "WHERE meme_id = ANY(%s::uuid[])",
                (memes,),
            ).fetchall()
        )
    assert acked, "some votes were acknowledged"
    per_meme = Counter(meme for (_, meme) in acked)
    stored_per_meme = Counter(key.split("/")[0] for key in stored)
    assert all(stored_per_meme[m] >= n for m, n in per_meme.items()), (per_meme, stored_per_meme)
    acked_values = Counter(acked.values())
    assert sum(acked_values.values()) <= len(stored)


def test_kafka_restart_loses_no_acknowledged_request(
    private_stack: PrivateStack, chaos_api: str, chaos_worker: Proc
) -> None:
    stack = private_stack
    acked: list[str] = []
    statuses: Counter[int] = Counter()
    no_retry_after = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal no_retry_after
        with httpx.Client(base_url=chaos_api, timeout=20) as client:
            i = 0
            while not stop.is_set():
                try:
                    response = client.post(
                        "/api/meme/generate",
                        json={"template_id": "drake", "texts": ["KAFKA", f"RESTART {i}"]},
                    )
                except httpx.HTTPError:
                    statuses[0] += 1
                    continue
                statuses[response.status_code] += 1
                if response.status_code == 202:
                    acked.append(response.json()["meme_id"])
                elif response.status_code == 503 and "retry-after" not in response.headers:
                    no_retry_after += 1
                i += 1
                time.sleep(0.2)

    sender = threading.Thread(target=load)
    sender.start()
    time.sleep(3)
    stack.stop(["kafka"])
    time.sleep(3)
    stack.start(["kafka"])
    time.sleep(5)
    stop.set()
    sender.join(timeout=60)

    # Wait for every acknowledged request; a crashed worker is started again, as a
    # supervisor (Kubernetes, systemd) would, but a live worker that stops consuming fails.
    survived = True
    replacement: Proc | None = None
    found: dict[str, str] = {}
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            found = rows(stack.settings.database_url, acked)
            if len(found) == len(acked) and set(found.values()) <= DONE:
                break
            if replacement is None and not chaos_worker.alive():
                survived = False
                _, replacement = stack.worker(
                    "worker-after-kafka",
                    prefix=chaos_worker.prefix,
                    replaces=_members(stack, chaos_worker),
                )
            time.sleep(1.0)
    finally:
        if replacement is not None:
            stack.kill(replacement)
    missing = [i for i in acked if found.get(i) not in DONE]
    print(
        f"\nKafka restart: {dict(statuses)}; {len(acked)} acknowledged, {len(missing)} missing; "
        f"worker {'survived' if survived else 'crashed and was restarted'}"
    )
    assert statuses[503] > 0, "requests during the outage were refused"
    assert no_retry_after == 0, "a 503 must say when to retry"
    assert not missing, f"{len(missing)} acknowledged requests were lost"
    _all_stored(stack, acked)
    if not survived:
        pytest.xfail(
            "the render worker exits when Kafka restarts: streams/lag.py's consumer_lag timer "
            "lets a TimeoutError from the admin client escape and Faust crashes the app"
        )


def _members(stack: PrivateStack, worker: Proc) -> set[str]:
    from streams.roles import RENDER

    try:
        return stack.members(RENDER.group_id_for(worker.prefix))
    except Exception:
        return set()
