"""Hostile input: every case gets a clear 4xx, a typed refusal, or a DLQ entry; nothing crashes.

HTTP cases go to the shared API (they are refused before Kafka). Poison events go to a
PRIVATE Kafka and worker (memestream/testing/private_stack.py): a poison message that wedges a
partition must never wedge the shared stack's.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from domain.events import MemeRequested
from domain.ids import new_id
from domain.settings import Settings
from loadgen.rest_target import routes_from_openapi
from memestream.testing.memes import insert_meme
from memestream.testing.private_stack import PrivateStack
from producers.serialization import AvroCodec
from producers.topics import MEME_REQUESTS
from tests.hostile.corpus import (
    EventCase,
    HttpCase,
    ImageCase,
    endpoint_cases,
    event_cases,
    http_cases,
    image_cases,
    multipart_image,
    unstorable_event_cases,
)

pytestmark = pytest.mark.timeout(240)


def test_hostile_http_requests_get_clear_4xx(api_url: str) -> None:
    outcomes: Counter[str] = Counter()
    failures = []
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for case in http_cases():
            headers = {"content-type": case.content_type, **case.headers}
            response = client.post("/api/meme/generate", content=case.body, headers=headers)
            outcomes[f"{response.status_code}"] += 1
            is_problem = response.headers.get("content-type", "").startswith(
                "application/problem+json"
            )
            if not (400 <= response.status_code < 500 and is_problem):
                failures.append((case.name, response.status_code, response.text[:200]))
        assert client.get("/health").status_code == 200, "the API must survive the corpus"
    print(f"\nhostile HTTP: {sum(outcomes.values())} cases -> {dict(sorted(outcomes.items()))}")
    assert not failures, failures


def _is_problem(response: httpx.Response) -> bool:
    return 400 <= response.status_code < 500 and response.headers.get(
        "content-type", ""
    ).startswith("application/problem+json")


def _refused(case: HttpCase, response: httpx.Response) -> bool:
    """A clear refusal: a 4xx problem+json (the case's own status when it names one). A batch
    may also refuse item by item: a 207 that accepted none, each item with its 4xx problem."""
    if case.status is not None and response.status_code != case.status:
        return False
    if _is_problem(response):
        return True
    if case.path != "/api/meme/batch" or response.status_code != 207:
        return False
    body = response.json()
    return body["accepted"] == 0 and all(
        400 <= item["status"] < 500 and item["problem"]["status"] == item["status"]
        for item in body["results"]
    )


def test_hostile_requests_to_every_endpoint_get_clear_4xx(
    api_url: str, stack_settings: Settings
) -> None:
    """Malformed multipart to the upload endpoint, and hostile batch, vote and auth requests."""
    memes = {
        "meme": insert_meme(stack_settings),
        "pending": insert_meme(stack_settings, status="pending"),
    }
    failures = []
    with httpx.Client(base_url=api_url, timeout=30) as client:
        account = _login(client)
        assert account, "the hostile cases need an account"
        client.cookies.clear()  # the login's session cookie would make every case logged in
        for group, cases in endpoint_cases().items():
            outcomes: Counter[int] = Counter()
            for case in cases:
                headers = dict(case.headers)
                if case.content_type:
                    headers["content-type"] = case.content_type
                if case.auth and not {"authorization", "x-api-key"} & set(headers):
                    headers.update(account)
                response = client.request(
                    case.method, case.path.format(**memes), content=case.body, headers=headers
                )
                outcomes[response.status_code] += 1
                if not _refused(case, response):
                    failures.append((group, case.name, response.status_code, response.text[:200]))
            print(f"\nhostile {group}: {len(cases)} cases -> {dict(sorted(outcomes.items()))}")
        assert client.get("/health").status_code == 200, "the API must survive the corpus"
    assert not failures, "\n".join(map(str, failures))


def _limit_memory() -> None:
    # A bomb that gets decoded blows this limit (MemoryError) instead of the machine.
    resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))


def _decode(case: ImageCase) -> tuple[str, str, float]:
    from domain.rendering.decode import decode
    from domain.rendering.errors import RenderError

    started = time.perf_counter()
    try:
        frames = decode(case.data, claimed_type=case.media_type)
    except RenderError as exc:
        return "refused", f"{type(exc).__name__}: {exc}", time.perf_counter() - started
    except Exception as exc:  # anything untyped is a finding
        return "untyped", f"{type(exc).__name__}: {exc}", time.perf_counter() - started
    return "accepted", f"{frames!r}"[:100], time.perf_counter() - started


def test_hostile_images_are_refused_with_a_reason(api_url: str) -> None:
    """Through the upload endpoint when the API has one; always through the decoder itself."""
    cases = image_cases()
    outcomes: Counter[str] = Counter()
    failures = []
    # Spawned, not forked: a fork inherits the test process's address space (models, the app),
    # which alone may be near the limit below, so a legal 26 MB read would crash it.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=_limit_memory) as pool:
        for case in cases:
            try:
                kind, detail, seconds = pool.submit(_decode, case).result(timeout=30)
            except BrokenProcessPool:
                failures.append((case.name, "decoder process crashed"))
                break
            outcomes[kind] += 1
            if kind != "refused" or seconds > 5:
                failures.append((case.name, kind, detail, round(seconds, 2)))
    print(f"\nhostile images (decoder): {len(cases)} cases -> {dict(outcomes)}")

    with httpx.Client(base_url=api_url, timeout=60) as client:
        upload = routes_from_openapi(client.get("/openapi.json").json()).get("upload")
        if upload is not None:
            statuses: Counter[int] = Counter()
            auth = _login(client)
            for case in cases:
                body, content_type = multipart_image(upload.file_field or "file", case)
                response = client.post(
                    upload.path, content=body, headers={"content-type": content_type, **auth}
                )
                statuses[response.status_code] += 1
                if not 400 <= response.status_code < 500:
                    failures.append((case.name, "upload", response.status_code))
            print(f"hostile images (POST {upload.path}): {dict(statuses)}")
        else:
            print("hostile images: the API has no upload endpoint yet; decoder only")
        assert client.get("/health").status_code == 200
    assert not failures, failures


def _login(client: httpx.Client) -> dict[str, str]:
    """An account to upload with (uploads need one); {} when the API has no accounts."""
    credentials = {"username": f"hostile-{uuid.uuid4().hex[:8]}", "password": "hostile-pass-1"}
    client.post("/api/auth/register", json=credentials)
    response = client.post("/api/auth/login", json=credentials)
    if response.status_code != 200:
        return {}
    return {"authorization": f"Bearer {response.json()['token']}"}


def _dlq_end(bootstrap: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"h-{uuid.uuid4()}"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(MEME_REQUESTS.dlq, 0), timeout=10)
        return int(high)
    finally:
        consumer.close()


def _dlq_since(bootstrap: str, start: int, keys: set[bytes], timeout: float) -> dict[bytes, dict]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"h-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(MEME_REQUESTS.dlq, 0, start)])
    found: dict[bytes, dict] = {}
    deadline = time.monotonic() + timeout
    try:
        while set(found) < keys and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() or message.key() not in keys:
                continue
            found[message.key()] = dict(message.headers() or [])
    finally:
        consumer.close()
    return found


def _statuses(database_url: str, ids: list[str]) -> dict[str, tuple[str, str | None]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id::text, status, error FROM memes WHERE id = ANY(%s::uuid[])", (ids,)
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _produce(stack: PrivateStack, cases: list[EventCase], run: str) -> dict[bytes, EventCase]:
    producer = Producer({"bootstrap.servers": stack.settings.kafka_bootstrap_servers})
    keys = {}
    for case in cases:
        key = f"hostile-{run}-{case.name}".encode()
        keys[key] = case
        producer.produce(MEME_REQUESTS.name, key=key, value=case.value)
    assert producer.flush(10) == 0
    return keys


def _good_on_every_partition(stack: PrivateStack) -> list[str]:
    codec = AvroCodec()
    producer = Producer({"bootstrap.servers": stack.settings.kafka_bootstrap_servers})
    ids = []
    for partition in range(MEME_REQUESTS.partitions):
        event = MemeRequested(meme_id=new_id(), template_id="drake", texts=["still", "alive"])
        producer.produce(
            MEME_REQUESTS.name, key=event.key, value=codec.encode(event), partition=partition
        )
        ids.append(event.meme_id)
    assert producer.flush(10) == 0
    return ids


def _wait_rows(database_url: str, ids: list[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    rows: dict = {}
    while time.monotonic() < deadline:
        rows = _statuses(database_url, ids)
        if len(rows) == len(ids) and all(s in {"rendered", "failed"} for s, _ in rows.values()):
            break
        time.sleep(0.5)
    return rows


def test_poison_events_go_to_the_dlq_or_fail_with_a_reason(private_stack: PrivateStack) -> None:
    stack = private_stack
    bootstrap = stack.settings.kafka_bootstrap_servers
    _, worker = stack.worker("worker-hostile")
    try:
        start = _dlq_end(bootstrap)
        run = uuid.uuid4().hex[:8]
        cases = event_cases()
        keys = _produce(stack, cases, run)
        alive = _good_on_every_partition(stack)

        undecodable = {k for k, c in keys.items() if c.meme_id is None}
        dlq = _dlq_since(bootstrap, start, undecodable, timeout=60)
        decodable = [c.meme_id for c in cases if c.meme_id]
        rows = _wait_rows(stack.settings.database_url, decodable + alive, timeout=90)
        assert worker.alive(), worker.output()[-3000:]
    finally:
        stack.kill(worker)

    outcome: Counter[str] = Counter(dlq=len(dlq))
    for meme_id in decodable:
        outcome[rows.get(meme_id, ("missing", None))[0]] += 1
    print(f"\npoison events: {len(cases)} cases -> {dict(outcome)}")
    for case in cases:
        if case.meme_id:
            print(f"  {case.name}: {rows.get(case.meme_id, ('missing', None))}")
    assert set(dlq) == undecodable, sorted(k.decode() for k in undecodable - set(dlq))
    for headers in dlq.values():
        assert headers["dlq.error.class"] and headers["dlq.error.message"]
        assert headers["dlq.original.topic"] == MEME_REQUESTS.name.encode()
    for case in cases:
        if case.meme_id:
            status, error = rows.get(case.meme_id, ("missing", None))
            assert status in {"rendered", "failed"}, (case.name, status)
            if status == "failed":
                assert error, f"{case.name} failed without a reason"
    assert all(rows.get(i, ("missing",))[0] == "rendered" for i in alive), "a partition is stuck"


def test_events_that_can_never_be_stored_go_to_the_dlq(private_stack: PrivateStack) -> None:
    """Decodable MemeRequested events whose row can never be written (bad id, NUL byte)."""
    stack = private_stack
    bootstrap = stack.settings.kafka_bootstrap_servers
    _, worker = stack.worker("worker-hostile-bad-id")
    try:
        start = _dlq_end(bootstrap)
        keys = _produce(stack, unstorable_event_cases(), uuid.uuid4().hex[:8])
        alive = _good_on_every_partition(stack)
        dlq = _dlq_since(bootstrap, start, set(keys), timeout=20)
        rows = _wait_rows(stack.settings.database_url, alive, timeout=30)
        assert worker.alive(), worker.output()[-3000:]
    finally:
        stack.kill(worker)
    stuck = [i for i in alive if rows.get(i, ("missing",))[0] != "rendered"]
    print(f"\nunstorable events: {len(keys)} cases -> dlq {len(dlq)}, stuck {len(stuck)}")
    assert set(dlq) == set(keys), "an event that can never be stored belongs in the DLQ"
    assert not stuck, f"{len(stuck)} partitions are held by a poison event"
