"""SIGKILL a render worker mid-load: every accepted request is rendered exactly once."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid

import httpx
import psutil
import pytest
from confluent_kafka import Consumer, TopicPartition

from loadgen.lag import LagReader
from producers.serialization import AvroCodec
from producers.topics import MEME_RENDERED, MEME_REQUESTS
from streams.roles import RENDER
from tests.chaos.private import PrivateStack
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


def _kill_tree(pid: int) -> None:
    """Like a pod OOM-kill: the worker and its render processes die at once."""
    parent = psutil.Process(pid)
    for proc in [*parent.children(recursive=True), parent]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)


def _rendered_event_ids(bootstrap: str, ids: set[str], timeout: float = 20) -> dict[str, set]:
    """Distinct MemeRendered event ids per meme in `meme.rendered` (replays reuse the id)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"c-{uuid.uuid4()}"})
    consumer.assign(
        [TopicPartition(MEME_RENDERED.name, p, 0) for p in range(MEME_RENDERED.partitions)]
    )
    codec = AvroCodec()
    seen: dict[str, set] = {}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and set(seen) < ids:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            event = codec.decode(message.value())
            if event.meme_id in ids:
                seen.setdefault(event.meme_id, set()).add(event.event_id)
    finally:
        consumer.close()
    return seen


def test_sigkill_worker_mid_load_renders_every_request_exactly_once(
    private_stack: PrivateStack, chaos_api: str
) -> None:
    stack = private_stack
    prefix, first = stack.worker("worker-kill-1")
    accepted: list[str] = []
    statuses: dict[int, int] = {}

    def load() -> None:
        with httpx.Client(base_url=chaos_api, timeout=15) as client:
            for _ in range(4):
                ids, counts = generate(client, 10, "SIGKILL")
                accepted.extend(ids)
                for code, n in counts.items():
                    statuses[code] = statuses.get(code, 0) + n
                time.sleep(0.25)

    sender = threading.Thread(target=load)
    sender.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill mid-load: some rendered, more in flight
        done = rows(stack.settings.database_url, list(accepted))
        if sum(1 for v in done.values() if v in DONE) >= 5:
            break
        time.sleep(0.1)
    killed_at = sum(
        1 for v in rows(stack.settings.database_url, list(accepted)).values() if v == "rendered"
    )
    dead = stack.members(RENDER.group_id_for(prefix))
    _kill_tree(first.popen.pid)
    first.popen.wait(timeout=10)
    # The replacement joins the same consumer group and resumes from the committed offsets
    # once the dead member's session (KAFKA_SESSION_TIMEOUT_S=10) expires.
    _, second = stack.worker("worker-kill-2", prefix=prefix, replaces=dead)
    sender.join(timeout=60)
    group = RENDER.group_id_for(prefix)
    try:
        found = wait_rendered(stack.settings.database_url, accepted, timeout=120)
        assert second.alive()
        lag = LagReader(stack.settings.kafka_bootstrap_servers).read(group, MEME_REQUESTS.name)
    finally:
        stack.kill(second)

    print(
        f"\nSIGKILL: {len(accepted)} accepted, statuses {statuses}, rows {len(found)}, "
        f"killed after {killed_at} rendered"
    )
    assert statuses.get(202) == len(accepted) == 40, statuses
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
    for meme_id in accepted:
        stored = final_objects(objects(stack, meme_id))
        assert len(stored) == 3, (meme_id, stored)
        assert all(decodes(p) for p in stored)
    events = _rendered_event_ids(stack.settings.kafka_bootstrap_servers, set(accepted))
    assert set(events) == set(accepted)
    duplicated = {m: e for m, e in events.items() if len(e) != 1}
    assert not duplicated, "a replayed render must reuse its MemeRendered event id"
