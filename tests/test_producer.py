"""The idempotent producer against the real broker, and against no broker at all."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from domain.events import View
from domain.settings import Settings
from producers.producer import EventProducer, ProducerUnavailable, producer_config
from producers.serialization import AvroCodec
from producers.topics import MEME_VIEWS


def test_config_is_idempotent_with_acks_all(stack_settings: Settings) -> None:
    config = producer_config(stack_settings, "t")
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"


async def test_send_resolves_after_the_broker_stored_the_event(stack_settings: Settings) -> None:
    producer = EventProducer(stack_settings, client_id="test-producer")
    event = View(meme_id=str(uuid.uuid4()), user_id="tester")
    try:
        delivery = await producer.send(MEME_VIEWS.name, event, headers=[("x-test", b"1")])
    finally:
        assert producer.close() == 0
    consumer = Consumer(
        {
            "bootstrap.servers": stack_settings.kafka_bootstrap_servers,
            "group.id": f"test-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(delivery.topic, delivery.partition, delivery.offset)])
        message = consumer.poll(10)
        assert message is not None and message.error() is None
        assert message.key() == event.meme_id.encode()
        assert AvroCodec().decode(message.value()) == event
        assert ("x-test", b"1") in (message.headers() or [])
    finally:
        consumer.close()


async def test_unreachable_broker_raises_unavailable_quickly(stack_settings: Settings) -> None:
    settings = stack_settings.model_copy(
        update={"kafka_bootstrap_servers": "127.0.0.1:1", "kafka_delivery_timeout_ms": 1000}
    )
    producer = EventProducer(settings, client_id="test-dead")
    started = time.monotonic()
    with pytest.raises(ProducerUnavailable):
        await producer.send(MEME_VIEWS.name, View(meme_id="m"))
    assert time.monotonic() - started < 5
    producer.close(timeout=0.5)


def test_connect_returns_once_the_broker_answers_and_raises_when_none_does(
    stack_settings: Settings,
) -> None:
    producer = EventProducer(stack_settings, client_id="test-connect")
    try:
        producer.connect(timeout=10)
    finally:
        producer.close(timeout=1)
    settings = stack_settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    dead = EventProducer(settings, client_id="test-connect-dead")
    started = time.monotonic()
    try:
        with pytest.raises(ProducerUnavailable):
            dead.connect(timeout=1)
        assert time.monotonic() - started < 5
    finally:
        dead.close(timeout=0.5)
