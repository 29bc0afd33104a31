"""Helpers of the data-layer tests: accounts, memes written straight to PostgreSQL, Kafka tails."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from fastapi.testclient import TestClient

from domain.events import Event
from domain.ids import id_time
from domain.settings import Settings
from producers.serialization import AvroCodec

PASSWORD = "correct horse battery"


def register(client: TestClient, prefix: str = "t") -> dict[str, Any]:
    """A new user, logged in: {'id', 'username', 'token', 'headers'}."""
    username = f"{prefix}{uuid.uuid4().hex[:10]}"
    created = client.post("/api/auth/register", json={"username": username, "password": PASSWORD})
    assert created.status_code == 201, created.text
    login = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    token = login.json()["token"]
    return {
        "id": created.json()["id"],
        "username": username,
        "token": token,
        "headers": {"Authorization": f"Bearer {token}"},
    }


def make_admin(settings: Settings, user_id: str) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE users SET role = 'admin' WHERE id = %s", (user_id,))


def meme_status(settings: Settings, meme_id: str) -> str | None:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT status FROM memes WHERE id = %s AND created_at = %s",
            (meme_id, id_time(meme_id)),
        ).fetchone()
    return row[0] if row else None


@contextmanager
def kafka_tail(settings: Settings, topic: str) -> Iterator[Consumer]:
    """A consumer positioned at the current end of every partition of `topic`."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"test-tail-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    assigned = []
    for p in partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        assigned.append(TopicPartition(topic, p, high if high >= 0 else OFFSET_END))
    consumer.assign(assigned)
    try:
        yield consumer
    finally:
        consumer.close()


def events_for(consumer: Consumer, meme_id: str, timeout: float = 10.0) -> list[Event]:
    """The events keyed by `meme_id` that arrive within `timeout` (returns on the first batch)."""
    codec = AvroCodec()
    found: list[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            if found:
                return found
            continue
        if message.key() == meme_id.encode():
            found.append(codec.decode(message.value()))
    return found
