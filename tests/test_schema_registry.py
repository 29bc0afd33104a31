"""The schema registry path, against the stack's real Apicurio Registry and Kafka.

A stock confluent-kafka `AvroDeserializer`, given nothing but the registry's URL, reads what
our producers write on every topic; a schema change without a default is refused by the
registry before a message is produced; a registry outage (a real cut connection, through a
loopback proxy) leaves cached ids working, and a schema never resolved answers 503.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastapi.testclient import TestClient

from api.app import create_app
from domain.events import (
    FeedEvent,
    FeedKind,
    MemeDeleted,
    MemeRendered,
    MemeRequested,
    RenderStatus,
    View,
    Vote,
)
from domain.ids import new_id
from domain.settings import PROJECT_ROOT, Settings
from producers.producer import EventProducer, SchemaRegistryUnavailable
from producers.schema_registry import RETRY_AFTER_S, SchemaIds, SchemaRejected, SchemaUnavailable
from producers.serialization import (
    CONFLUENT_MAGIC,
    SCHEMAS_DIR,
    AvroCodec,
    SchemaRegistry,
    WireFormat,
)
from producers.topics import MEME_REQUESTS, MEME_VOTES, TOPICS
from tests.chaos.proxy import ChaosProxy
from tests.data_helpers import events_for, kafka_tail

pytestmark = pytest.mark.services


def _events() -> list[tuple[str, object]]:
    request = MemeRequested(meme_id=new_id(), template_id="drake", texts=["a", "b"])
    return [
        ("meme.requests", request),
        (
            "meme.rendered",
            MemeRendered.for_request(
                request, status=RenderStatus.FAILED, variants=[], render_ms=1.0, error="x"
            ),
        ),
        ("meme.votes", Vote(meme_id=new_id(), user_id="u", value=1)),
        ("meme.views", View(meme_id=new_id())),
        ("meme.deleted", MemeDeleted(meme_id=new_id(), deleted_by="admin")),
        ("meme.feed", FeedEvent(meme_id=new_id(), kind=FeedKind.VOTES, votes=1, score=1.0)),
    ]


def _read_back(settings: Settings, name: str, partition: int, offset: int) -> bytes:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"test-registry-{new_id()}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(name, partition, offset)])
        for _ in range(40):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return bytes(message.value())
        raise AssertionError(f"nothing read back from {name}[{partition}]@{offset}")
    finally:
        consumer.close()


async def test_a_stock_deserializer_reads_every_topic(stack_settings: Settings) -> None:
    producer = EventProducer(stack_settings, client_id="test-registry")
    stock = AvroDeserializer(
        SchemaRegistryClient({"url": stack_settings.schema_registry_url, "timeout": 10})
    )
    try:
        assert producer.codec.wire_format is WireFormat.CONFLUENT
        events = _events()
        assert {name for name, _ in events} == {spec.name for spec in TOPICS}  # every topic
        for name, event in events:
            delivery = await producer.send(name, event)  # type: ignore[arg-type]
            value = _read_back(stack_settings, name, delivery.partition, delivery.offset)
            assert value[0] == CONFLUENT_MAGIC
            record = stock(value, SerializationContext(name, MessageField.VALUE))
            assert record["event_id"] == event.event_id, name  # type: ignore[attr-defined]
            assert record["meme_id"] == event.meme_id, name  # type: ignore[attr-defined]
            assert AvroCodec().decode(value) == event  # our consumers read it too
    finally:
        producer.close()


def test_single_object_messages_stay_readable(stack_settings: Settings) -> None:
    """Data written before the registry (or with AVRO_WIRE_FORMAT=single-object) still reads."""
    vote = Vote(meme_id=new_id(), user_id="u", value=-1)
    old = AvroCodec(wire_format=WireFormat.SINGLE_OBJECT).encode(vote)
    new = AvroCodec.from_settings(stack_settings).encode(vote)
    assert old[:2] == b"\xc3\x01" and new[0] == CONFLUENT_MAGIC
    reader = AvroCodec.from_settings(stack_settings)
    assert reader.decode(old) == reader.decode(new) == vote


def test_the_switch_writes_single_object_without_a_registry(stack_settings: Settings) -> None:
    for update in ({"schema_registry_url": ""}, {"avro_wire_format": "single-object"}):
        settings = stack_settings.model_copy(update=update)
        codec = AvroCodec.from_settings(settings)
        assert codec.wire_format is WireFormat.SINGLE_OBJECT
        assert codec.encode(Vote(meme_id="m", user_id="u", value=1))[:2] == b"\xc3\x01"


@pytest.fixture
def breaking_schemas(tmp_path: Path) -> Path:
    """schemas/ plus a Vote.v2 that adds a field without a default: old votes lack it."""
    folder = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, folder)
    vote = json.loads((SCHEMAS_DIR / "Vote.v1.avsc").read_text())
    vote["fields"].append({"name": "weight", "type": "int"})
    (folder / "Vote.v2.avsc").write_text(json.dumps(vote))
    return folder


async def test_a_field_without_a_default_is_refused_before_producing(
    stack_settings: Settings, breaking_schemas: Path
) -> None:
    codec = AvroCodec.from_settings(stack_settings, SchemaRegistry.from_folder(breaking_schemas))
    producer = EventProducer(stack_settings, client_id="test-registry-breaking", codec=codec)
    vote = Vote(meme_id=new_id(), user_id="u", value=1)
    try:
        with kafka_tail(stack_settings, MEME_VOTES.name) as tail:
            with pytest.raises(SchemaRegistryUnavailable) as refused:
                await producer.send(MEME_VOTES.name, vote)
            assert events_for(tail, vote.meme_id, timeout=2.0) == []
        assert isinstance(refused.value.__cause__, SchemaRejected)
        assert "meme.votes-value" in str(refused.value)
    finally:
        producer.close()
    # The registry kept its history: Vote.v1 only.
    client = SchemaRegistryClient({"url": stack_settings.schema_registry_url, "timeout": 10})
    assert len(client.get_versions("meme.votes-value")) == 1


def _schemas_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"SCHEMA_REGISTRY_URL": str(settings.schema_registry_url), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "memestream", "schemas", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_schemas_check_passes_on_the_repository(stack_settings: Settings) -> None:
    """What CI runs (`make test`): schemas/ against the stack's registry."""
    done = _schemas_cli(stack_settings, "check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "meme.requests-value" in done.stdout


def test_schemas_check_fails_on_an_incompatible_change(
    stack_settings: Settings, breaking_schemas: Path
) -> None:
    done = _schemas_cli(stack_settings, "check", "--folder", str(breaking_schemas))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Vote.v2" in done.stdout


def test_schemas_register_is_idempotent(stack_settings: Settings) -> None:
    client = SchemaRegistryClient({"url": stack_settings.schema_registry_url, "timeout": 10})
    before = {s: client.get_versions(s) for s in client.get_subjects()}
    for _ in range(2):
        done = _schemas_cli(stack_settings, "register")
        assert done.returncode == 0, done.stdout + done.stderr
    assert {s: client.get_versions(s) for s in client.get_subjects()} == before
    assert client.get_compatibility("meme.requests-value") == "BACKWARD_TRANSITIVE"


@pytest.fixture
def registry_proxy(stack_settings: Settings) -> Iterator[tuple[ChaosProxy, Settings]]:
    """The stack's registry behind a loopback proxy the test can cut."""
    url = urlsplit(str(stack_settings.schema_registry_url))
    with ChaosProxy(url.hostname or "127.0.0.1", url.port or 80) as proxy:
        proxied = url._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
        yield proxy, stack_settings.model_copy(update={"schema_registry_url": proxied})


def test_an_outage_keeps_cached_ids_and_refuses_unknown_ones(
    registry_proxy: tuple[ChaosProxy, Settings],
) -> None:
    proxy, settings = registry_proxy
    ids = SchemaIds(str(settings.schema_registry_url), SchemaRegistry.from_folder(), timeout_s=1)
    codec = AvroCodec(ids.local, wire_format=WireFormat.CONFLUENT, schema_ids=ids)
    ids.resolve(["MemeRequested"])
    proxy.cut()
    request = MemeRequested(meme_id=new_id(), template_id="drake", texts=["a"])
    assert codec.decode(codec.encode(request)) == request  # cached: no registry call
    with pytest.raises(SchemaUnavailable):
        codec.encode(Vote(meme_id=new_id(), user_id="u", value=1))
    proxy.restore()


def test_the_api_answers_503_not_202_without_the_schema(
    registry_proxy: tuple[ChaosProxy, Settings],
) -> None:
    proxy, settings = registry_proxy
    proxy.cut()  # down before the API could fetch a single id
    marker = f"registry-outage-{new_id()}"
    body = {"template_id": "drake", "texts": [marker, "b"]}
    with (
        TestClient(create_app(settings)) as client,
        kafka_tail(settings, MEME_REQUESTS.name) as tail,
    ):
        response = client.post("/api/meme/generate", json=body)
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["retry-after"]
        assert response.json()["service"] == "schema-registry"
        proxy.restore()
        time.sleep(RETRY_AFTER_S)  # failures are not retried sooner
        accepted = client.post("/api/meme/generate", json=body)
        assert accepted.status_code == 202, accepted.text
        produced = _requests_with(tail, marker)
    assert [e.meme_id for e in produced] == [accepted.json()["meme_id"]]  # the 202's only


def _requests_with(tail: Consumer, marker: str, timeout: float = 10.0) -> list[MemeRequested]:
    """Requests carrying `marker` in their texts, until one arrives or `timeout` passes."""
    codec = AvroCodec()
    found: list[MemeRequested] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not found:
        message = tail.poll(0.5)
        if message is None or message.error() is not None:
            continue
        event = codec.decode(message.value())
        if isinstance(event, MemeRequested) and marker in event.texts:
            found.append(event)
    return found
