"""SIGKILL a render worker mid-load: every accepted request is rendered exactly once."""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
import psutil
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from domain.events import MemeRendered
from loadgen.lag import LagReader
from memestream.testing.private_stack import PrivateStack
from producers.roles import RENDER
from producers.serialization import AvroCodec, SerializationError
from producers.topics import MEME_RENDERED, MEME_REQUESTS
from tests.chaos.support import (
    DONE,
    decodes,
    final_objects,
    generate,
    objects,
    rows,
    wait_rendered,
)

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]

VARIANTS = frozenset({"full", "medium", "thumb"})


def _kill_tree(pid: int) -> None:
    """Like a pod OOM-kill: the worker and its render processes die at once."""
    parent = psutil.Process(pid)
    for proc in [*parent.children(recursive=True), parent]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)


@dataclass
class RenderedLog:
    """What `meme.rendered` holds for some memes: every message, not just distinct events."""

    messages: Counter[str] = field(default_factory=Counter)  # meme id -> messages
    # meme id -> distinct (event id, status, variant keys): one when duplicates are replays
    versions: dict[str, set[tuple[str, str, tuple[str, ...]]]] = field(default_factory=dict)

    def add(self, event: MemeRendered) -> None:
        self.messages[event.meme_id] += 1
        keys = tuple(sorted(v.key for v in event.variants))
        self.versions.setdefault(event.meme_id, set()).add(
            (event.event_id, event.status.value, keys)
        )


def _read_rendered(bootstrap: str, ids: set[str], timeout: float = 30) -> RenderedLog:
    """Every `meme.rendered` message about `ids`, read to the partitions' current ends (so a
    duplicate appended after the first copy is counted too)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"c-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(MEME_RENDERED.name, p), timeout=10)[1]
        for p in range(MEME_RENDERED.partitions)
    }
    todo = {p for p, end in ends.items() if end > 0}
    consumer.assign([TopicPartition(MEME_RENDERED.name, p, 0) for p in todo])
    codec = AvroCodec()
    log = RenderedLog()
    deadline = time.monotonic() + timeout
    try:
        while todo:
            assert time.monotonic() < deadline, f"{MEME_RENDERED.name} not read to its end"
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    todo.discard(message.partition())
                continue
            if message.offset() >= ends[message.partition()] - 1:
                todo.discard(message.partition())
            if message.offset() >= ends[message.partition()]:
                continue
            try:
                event = codec.decode(message.value())
            except SerializationError:  # poison an earlier test wrote to this private Kafka
                continue
            if isinstance(event, MemeRendered) and event.meme_id in ids:
                log.add(event)
    finally:
        consumer.close()
    return log


def _row_counts(database_url: str, ids: list[str]) -> dict[str, tuple[int, list[str]]]:
    """meme id -> (rows with that id, the object keys of its variants)."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        found = conn.execute(
            "SELECT id::text, count(*), min(variants::text)::jsonb FROM memes "
            "WHERE id = ANY(%s::uuid[]) GROUP BY id",
            (ids,),
        ).fetchall()
    return {m: (n, sorted(v["key"] for v in variants)) for m, n, variants in found}


BATCHES, PER_BATCH = 4, 10


def test_sigkill_worker_mid_load_renders_every_request_exactly_once(
    private_stack: PrivateStack, chaos_api: str
) -> None:
    stack = private_stack
    database_url = stack.settings.database_url
    # The requests wait in Kafka before the worker starts, and it renders with one thread, so
    # the kill lands with some rendered and the rest in flight: a worker running alongside the
    # load kept pace with it, and nothing was left waiting to be killed.
    prefix = f"chaos-{uuid.uuid4().hex[:6]}"
    group = RENDER.group_id_for(prefix)
    stack.start_group_at_end(group, RENDER.topics)
    accepted: list[str] = []
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=chaos_api, timeout=15) as client:
        for _ in range(BATCHES):
            ids, counts = generate(client, PER_BATCH, "SIGKILL")
            accepted.extend(ids)
            for code, n in counts.items():
                statuses[code] = statuses.get(code, 0) + n
    _, first = stack.worker("worker-kill-1", prefix=prefix, WORKER_THREADS="1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill mid-work: some rendered, the rest waiting
        done = sum(1 for v in rows(database_url, accepted).values() if v in DONE)
        if done >= 3:
            break
        time.sleep(0.05)
    before_kill = list(accepted)  # acknowledged (202) before the kill
    dead = stack.members(group)
    _kill_tree(first.popen.pid)
    first.popen.wait(timeout=10)
    # The worker is dead, so these rows are what it left: the requests it had not finished
    # were in flight (in its queues or render pool, or not fetched yet) when it was killed.
    left = rows(database_url, before_kill)
    in_flight = [m for m in before_kill if left.get(m) not in DONE]
    lag_at_kill = LagReader(stack.settings.kafka_bootstrap_servers).read(group, MEME_REQUESTS.name)
    # The replacement joins the same consumer group and resumes from the committed offsets
    # once the dead member's session (KAFKA_SESSION_TIMEOUT_S=10) expires.
    _, second = stack.worker("worker-kill-2", prefix=prefix, replaces=dead)
    try:
        found = wait_rendered(database_url, accepted, timeout=120)
        assert second.alive()
        lag = LagReader(stack.settings.kafka_bootstrap_servers).read(group, MEME_REQUESTS.name)
    finally:
        stack.kill(second)

    print(
        f"\nSIGKILL: {len(accepted)} accepted, statuses {statuses}, rows {len(found)}; at the "
        f"kill {len(before_kill)} accepted, {len(before_kill) - len(in_flight)} rendered, "
        f"{len(in_flight)} in flight, lag {lag_at_kill.total} on {MEME_REQUESTS.name}"
    )
    assert statuses.get(202) == len(accepted) == BATCHES * PER_BATCH, statuses
    assert in_flight, "the kill must hit accepted requests that were not rendered yet"
    assert lag_at_kill.total > 0, (
        "offsets of requests the killed worker never finished must stay uncommitted"
    )
    pending = sum(1 for v in found.values() if v not in DONE)
    assert pending == 0, (
        f"{pending} accepted memes never rendered; the group's lag on {MEME_REQUESTS.name} is "
        f"{lag.total} ({[(p.committed, p.latest) for p in lag.partitions]}): "
        + (
            "the killed worker committed offsets past requests it never finished"
            if lag.total == 0
            else "the replacement worker is not consuming"
        )
    )
    assert len(found) == len(accepted)

    # What the product promises: one row and one set of objects per accepted request.
    counted = _row_counts(database_url, accepted)
    assert {m: n for m, (n, _) in counted.items() if n != 1} == {}, "one row per meme"
    leftovers = 0
    for meme_id in accepted:
        files = objects(stack, meme_id)
        stored = final_objects(files)
        leftovers += len(files) - len(stored)
        assert sorted(p.stem for p in stored) == sorted(VARIANTS), (meme_id, stored)
        assert all(decodes(p) for p in stored), (meme_id, stored)
        keys = sorted(f"memes/{meme_id}/{p.name}" for p in stored)
        assert counted[meme_id][1] == keys, ("the row names the objects stored", meme_id)

    # The topic: consumers are at-least-once, so `meme.rendered` MAY hold a meme's outcome
    # more than once (a request the killed worker finished but had not committed is rendered
    # again by its replacement). Each copy is a replay of the same event: the event id derives
    # from the request's (uuid5) and the objects' keys from the meme id, so consumers dedupe
    # on the event id and a replay changes nothing. What is promised: every accepted meme has
    # its outcome there, and all its copies are the same event.
    log = _read_rendered(stack.settings.kafka_bootstrap_servers, set(accepted))
    assert set(log.messages) == set(accepted), "every accepted meme's outcome is in the topic"
    differing = {m: v for m, v in log.versions.items() if len(v) != 1}
    assert not differing, "a replayed render must reuse its MemeRendered event id and keys"
    duplicated = {m: n for m, n in log.messages.items() if n > 1}
    by_first = [m for m in duplicated if m in before_kill and m not in in_flight]
    print(
        f"meme.rendered: {sum(log.messages.values())} messages for {len(accepted)} memes, "
        f"{len(duplicated)} duplicated ({len(by_first)} of them finished by the killed worker); "
        f"{leftovers} temp files left by the kill"
    )
