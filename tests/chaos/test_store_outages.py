"""Stores going away under load, on PRIVATE instances: degrade, never lose or corrupt.

Order matters inside this module: the Kafka restart runs last, the others share one render
worker and, except the Redis outage (its own API, with rate limits on), one API.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from memestream.testing.private_stack import PrivateStack, Proc
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


def _api_key_voter(client: httpx.Client, name: str) -> tuple[str, dict[str, str]]:
    """A new account and its API key: (user id, headers). A key is checked against its hash in
    PostgreSQL, so unlike a session (kept in Redis) it authenticates while Redis is down."""
    credentials = {"username": name, "password": "chaos-password-1"}
    registered = client.post("/api/auth/register", json=credentials)
    assert registered.status_code == 201, registered.text
    login = client.post("/api/auth/login", json=credentials)
    assert login.status_code == 200, login.text
    session = {"authorization": f"Bearer {login.json()['token']}"}
    created = client.post("/api/auth/api-keys", json={"name": "chaos"}, headers=session)
    assert created.status_code == 201, created.text
    headers = {"x-api-key": created.json()["key"]}
    me = client.get("/api/auth/me", headers=headers)
    assert me.status_code == 200 and me.json()["id"] == registered.json()["id"], me.text
    return registered.json()["id"], headers


@dataclass(frozen=True, slots=True)
class Call:
    """One response of the load (status 0: a transport error, named in `detail`)."""

    kind: str  # vote, trending or read
    started: float  # time.monotonic()
    ended: float
    status: int
    detail: str = ""  # 200: trending source / vote value answered; 503: Retry-After
    pair: tuple[str, str] | None = None  # vote: (user id, meme id)
    value: int = 0  # vote: the value sent


def _stored_votes(
    database_url: str, memes: list[str], users: list[str]
) -> dict[tuple[str, str], int]:
    """(user id, meme id) -> value in PostgreSQL's votes table (no row: no vote, i.e. 0)."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        found = conn.execute(
            "SELECT user_id::text, meme_id::text, value FROM votes "
            "WHERE meme_id = ANY(%s::uuid[]) AND user_id = ANY(%s::uuid[])",
            (memes, users),
        ).fetchall()
    return {(user, meme): int(value) for user, meme, value in found}


def _mismatches(
    acked: dict[tuple[str, str], int], stored: dict[tuple[str, str], int]
) -> dict[tuple[str, str], tuple[int, int | None]]:
    """Pairs whose stored value is not the last acknowledged one (acked, stored), and stored
    votes nobody was told about."""
    wrong = {
        pair: (value, stored.get(pair))
        for pair, value in acked.items()
        if stored.get(pair, 0) != value
    }
    wrong.update({pair: (0, value) for pair, value in stored.items() if pair not in acked})
    return wrong


def _summary(calls: list[Call]) -> dict[str, int]:
    """Counts per kind and status (trending: and source; transport errors: their name)."""
    return dict(
        Counter(
            f"{c.kind} {c.status or c.detail}" + (f" {c.detail}" if c.kind == "trending" else "")
            for c in calls
        )
    )


VOTE_VALUES = (1, -1, 0)  # 0 withdraws the vote: its row is deleted


def test_redis_down_for_30s_api_stays_up_and_no_vote_is_lost(
    private_stack: PrivateStack, chaos_worker: Proc
) -> None:
    """Voters use API keys; the API has rate limiting ON (Redis-backed, documented to fail open)
    with budgets no voter reaches, so every request goes through the limiter while Redis is down.
    """
    stack = private_stack
    api_url, api = stack.api(
        "api-chaos-redis",
        RATE_LIMIT_ENABLED="true",
        RATE_LIMIT_READS_PER_MINUTE="100000",
        RATE_LIMIT_WRITES_PER_MINUTE="100000",
    )
    try:
        _redis_outage(stack, api_url)
    finally:
        stack.kill(api)
    assert chaos_worker.alive()


def _redis_outage(stack: PrivateStack, api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=20) as client:
        paths = client.get("/openapi.json").json()["paths"]
        # The vote route is part of the API: its absence is a failure, not a skip.
        assert "/api/meme/{meme_id}/vote" in paths, "no votes endpoint"
        memes, _ = generate(client, 3, "VOTE ME")
        assert len(wait_rendered(stack.settings.database_url, memes, timeout=60)) == 3
        voters = [_api_key_voter(client, f"chaos-{uuid.uuid4().hex[:8]}") for _ in range(6)]
    users = [user for user, _ in voters]
    headers = dict(voters)
    pairs = [(user, meme) for meme in memes for user in users]

    calls: list[Call] = []
    acked: dict[tuple[str, str], int] = {}  # (user, meme) -> last acknowledged value
    stop = threading.Event()
    gate = threading.Lock()  # held by the load for one round; the test takes it to pause it

    def timed(client: httpx.Client, kind: str, method: str, url: str, **kw: Any) -> Call:
        started = time.monotonic()
        try:
            response = client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            return Call(kind, started, time.monotonic(), 0, type(exc).__name__)
        ended = time.monotonic()
        detail = ""
        if response.status_code == 503:
            detail = response.headers.get("retry-after", "")
        elif response.status_code == 200 and kind in {"trending", "vote"}:
            try:  # trending: which store answered; vote: the value the API says it stored
                detail = str(response.json()["source" if kind == "trending" else "value"])
            except (ValueError, KeyError):
                detail = f"unexpected body {response.text[:100]!r}"
        return Call(kind, started, ended, response.status_code, detail)

    def load() -> None:
        with httpx.Client(base_url=api_url, timeout=20) as client:
            i = 0
            while not stop.is_set():
                with gate:
                    k = i % len(pairs)
                    pair = pairs[k]
                    # Neighbouring pairs get different values, each pair a new one per round.
                    value = VOTE_VALUES[(i // len(pairs) + k) % len(VOTE_VALUES)]
                    user, meme = pair
                    vote = timed(
                        client,
                        "vote",
                        "POST",
                        f"/api/meme/{meme}/vote",
                        json={"value": value},
                        headers=headers[user],
                    )
                    calls.append(
                        Call(
                            "vote", vote.started, vote.ended, vote.status, vote.detail, pair, value
                        )
                    )
                    if 200 <= vote.status < 300:
                        acked[pair] = value
                    calls.append(timed(client, "trending", "GET", "/api/meme/trending"))
                    calls.append(timed(client, "read", "GET", f"/api/meme/{meme}"))
                i += 1
                time.sleep(0.1)

    sender = threading.Thread(target=load)
    sender.start()
    redis_down = False
    try:
        time.sleep(2)
        stopping = time.monotonic()
        redis_down = True
        stack.stop(["redis"])
        down_at = time.monotonic()  # Redis has exited: what starts now runs without it
        time.sleep(30)
        with gate:  # the load is between two requests: the outage's votes are all answered
            up_at = time.monotonic()
            acked_during = dict(acked)
            stored_during = _stored_votes(stack.settings.database_url, memes, users)
        stack.start(["redis"])
        redis_down = False
        restarted = time.monotonic()
        time.sleep(5)
    finally:
        stop.set()
        sender.join(timeout=30)
        if redis_down:  # the next tests need it
            stack.start(["redis"])
    assert not sender.is_alive(), "the load thread hangs"
    stored = _stored_votes(stack.settings.database_url, memes, users)

    before = [c for c in calls if c.ended <= stopping]
    during = [c for c in calls if c.started >= down_at and c.ended <= up_at]
    after = [c for c in calls if c.started >= restarted]
    print(
        f"\nRedis down {up_at - down_at:.1f} s; before {_summary(before)}; "
        f"during {_summary(during)}; after {_summary(after)}; all {_summary(calls)}; "
        f"{len(acked)} pairs acknowledged"
    )
    transport = [c for c in calls if c.status == 0]
    assert not transport, f"the API stays up: {transport[:5]}"
    broken = [c for c in calls if c.status >= 500 and c.status != 503]
    assert not broken, f"never a 500: {broken[:5]}"
    vague = [c for c in calls if c.status == 503 and not c.detail]
    assert not vague, f"a 503 must say when to retry (Retry-After): {vague[:5]}"

    votes_during = [c for c in during if c.kind == "vote"]
    assert len(votes_during) >= 30, f"too few votes during the outage: {_summary(during)}"
    refused = [c for c in calls if c.kind == "vote" and not 200 <= c.status < 300]
    assert not refused, (
        "an API-key vote needs PostgreSQL and Kafka only (rate limits fail open without Redis): "
        f"{_summary(refused)}"
    )
    misreported = [c for c in calls if c.kind == "vote" and c.detail != str(c.value)]
    assert not misreported, f"the vote's answer is not the value sent: {misreported[:5]}"
    trending_during = [c for c in during if c.kind == "trending"]
    assert trending_during and all(c.status == 200 for c in trending_during), _summary(during)
    assert all(c.detail != "redis" for c in trending_during), "trending said it used Redis"
    reads_during = [c for c in during if c.kind == "read"]
    assert reads_during and all(c.status == 200 for c in reads_during), (
        f"reads go to PostgreSQL while Redis is down: {_summary(reads_during)}"
    )

    # Exact values, not counts: each pair's last acknowledged vote is what PostgreSQL holds,
    # once with the outage's votes last (the load was paused before Redis came back) ...
    changed_during = {c.pair for c in votes_during}
    assert changed_during == set(pairs), "every pair was voted on during the outage"
    assert not _mismatches(acked_during, stored_during), _mismatches(acked_during, stored_during)
    # ... and once more at the end, after votes with Redis back.
    assert set(acked) == set(pairs)
    assert not _mismatches(acked, stored), _mismatches(acked, stored)


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
    assert survived, (
        "the render worker exited when Kafka restarted (a supervisor had to replace it): "
        + chaos_worker.output()[-3000:]
    )


def _members(stack: PrivateStack, worker: Proc) -> set[str]:
    from producers.roles import RENDER

    try:
        return stack.members(RENDER.group_id_for(worker.prefix))
    except Exception:
        return set()
