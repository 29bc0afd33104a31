"""What the schema registry costs: codec, produce/consume throughput and API generate latency,
with the Confluent wire format (registry ids) and with single-object encoding, in one run.

1. Serializer: µs per `MemeRequested` for our codec in both framings and for confluent-kafka's
   stock `AvroSerializer`/`AvroDeserializer` (same registry, schemas cached), which decides
   which one producers use.
2. Throughput: N events through `EventProducer` (idempotent, acks=all) into a private topic,
   then read back and decoded by a plain consumer, per framing.
3. API: two API processes on the same stores, one per framing; closed-loop POST
   /api/meme/generate alternating between them; p50/p95 each. The serializer's share is its
   whole encode (not only its extra over single-object) over the generate p50 (the issue's
   bound: at most 5 %).

    .venv/bin/python -m benchmarks.registry [--events 20000] [--requests 300]
    (BENCH_QUICK=1: 5,000 events, 100 requests)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks._result import Result, emit
from domain.events import MemeRequested
from domain.ids import new_id
from domain.settings import Settings, get_settings
from memestream.testing.environment import environment
from memestream.testing.processes import free_port, process, wait_for_http
from producers.producer import EventProducer
from producers.serialization import AvroCodec, WireFormat

SCRIPT = "registry"
ROUNDS = 5


def _request() -> MemeRequested:
    return MemeRequested(
        meme_id=new_id(), template_id="drake", texts=["one does not simply", "skip the tests"]
    )


def _per_op_us(fn: Callable[[], Any], n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def serializer_costs(settings: Settings, n: int) -> dict[str, float]:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from producers.serialization import _to_record

    single = AvroCodec(wire_format=WireFormat.SINGLE_OBJECT)
    confluent = AvroCodec.from_settings(settings)
    confluent.prefetch()
    event = _request()
    schema = confluent.registry.latest["MemeRequested"].text
    client = SchemaRegistryClient({"url": settings.schema_registry_url, "timeout": 10})
    stock_ser = AvroSerializer(
        client, schema, conf={"auto.register.schemas": False, "use.latest.version": True}
    )
    stock_de = AvroDeserializer(client)
    ctx = SerializationContext("meme.requests", MessageField.VALUE)
    record = _to_record(event)
    stock_bytes = stock_ser(record, ctx)
    ours = confluent.encode(event)
    assert stock_bytes[:5] == ours[:5], "the stock serializer names another schema id"
    single_bytes = single.encode(event)
    cases: dict[str, Callable[[], Any]] = {
        "encode_single_us": lambda: single.encode(event),
        "encode_confluent_us": lambda: confluent.encode(event),
        "encode_stock_us": lambda: stock_ser(_to_record(event), ctx),
        "decode_single_us": lambda: single.decode(single_bytes),
        "decode_confluent_us": lambda: confluent.decode(ours),
        "decode_stock_us": lambda: stock_de(stock_bytes, ctx),
    }
    # Rounds that alternate the codecs, best round each: the host's other load comes and goes.
    rounds: dict[str, list[float]] = {key: [] for key in cases}
    for _ in range(ROUNDS):
        for key, fn in cases.items():
            rounds[key].append(_per_op_us(fn, max(n // ROUNDS, 1)))
    return {key: min(values) for key, values in rounds.items()}


async def _produce(settings: Settings, topic: str, n: int) -> float:
    producer = EventProducer(settings, client_id=f"bench-registry-{settings.avro_wire_format}")
    producer.codec.prefetch()
    events = [_request() for _ in range(n)]
    start = time.perf_counter()
    for i in range(0, n, 1000):
        await asyncio.gather(*(producer.send(topic, e) for e in events[i : i + 1000]))
    elapsed = time.perf_counter() - start
    producer.close()
    return n / elapsed


def _consume(settings: Settings, topic: str, start_offset: int, n: int) -> float:
    codec = AvroCodec.from_settings(settings)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"bench-registry-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, start_offset)])
    done = 0
    start = time.perf_counter()
    while done < n:
        for message in consumer.consume(1000, timeout=5):
            if message.error() is None:
                codec.decode(message.value())
                done += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return n / elapsed


def throughput(settings: Settings, n: int) -> dict[str, float]:
    topic = f"bench.registry.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    out: dict[str, float] = {}
    offset = 0
    try:
        for framing in ("single-object", "confluent"):
            framed = settings.model_copy(update={"avro_wire_format": framing})
            out[f"produce_{framing}"] = asyncio.run(_produce(framed, topic, n))
            out[f"consume_{framing}"] = _consume(framed, topic, offset, n)
            offset += n
    finally:
        admin.delete_topics([topic])[topic].result(30)
    return out


def api_latency(settings: Settings, requests: int) -> dict[str, list[float]]:
    """Closed-loop generate against two API processes, alternating, so both see the same
    machine load."""
    from contextlib import ExitStack

    urls: dict[str, str] = {}
    with ExitStack() as stack:
        for framing in ("single-object", "confluent"):
            port = free_port()
            env = environment(settings) | {
                "API_PORT": str(port),
                "AVRO_WIRE_FORMAT": framing,
                "LOG_LEVEL": "WARNING",
                "RATE_LIMIT_ENABLED": "false",
            }
            args = ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)]
            proc = stack.enter_context(process(f"bench-registry-api-{framing}", args, env))
            urls[framing] = f"http://127.0.0.1:{port}"
            wait_for_http(f"{urls[framing]}/health", proc)
        latencies: dict[str, list[float]] = {framing: [] for framing in urls}
        body = {"template_id": "drake", "texts": ["registry", "benchmark"]}
        with httpx.Client(timeout=10) as client:
            for url in urls.values():  # warm-up: connections, schema ids
                for _ in range(10):
                    client.post(f"{url}/api/meme/generate", json=body).raise_for_status()
            for _ in range(requests):
                for framing, url in urls.items():
                    start = time.perf_counter()
                    client.post(f"{url}/api/meme/generate", json=body).raise_for_status()
                    latencies[framing].append((time.perf_counter() - start) * 1000)
    return latencies


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    quick = bool(os.environ.get("BENCH_QUICK"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000 if quick else 20000)
    parser.add_argument("--requests", type=int, default=100 if quick else 300)
    args = parser.parse_args()
    settings = get_settings()
    cores = os.cpu_count() or 1
    print(f"nproc {cores}; load average {os.getloadavg()[0]:.1f}")

    costs = serializer_costs(settings, 20000)
    for key, value in costs.items():
        print(f"{key:24} {value:8.2f} µs")
    rates = throughput(settings, args.events)
    for key, value in rates.items():
        print(f"{key:24} {value:10,.0f} events/s")
    latencies = api_latency(settings, args.requests)
    p = {f: (_pct(v, 50), _pct(v, 95)) for f, v in latencies.items()}
    for framing, (p50, p95) in p.items():
        print(f"generate {framing:14} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")
    p50_us = p["confluent"][0] * 1000
    extra_us = costs["encode_confluent_us"] - costs["encode_single_us"]
    share = costs["encode_confluent_us"] / p50_us * 100
    print(
        f"serializer: a whole encode is {share:.2f} % of the generate p50; its extra over "
        f"single-object {extra_us:+.2f} µs = {extra_us / p50_us * 100:+.3f} %"
    )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")

    results: list[Result] = [
        {
            "target": "registry_serializer_share",
            "value": round(share, 3),
            "unit": "%",
            "figure": (
                f"Confluent framing {costs['encode_confluent_us']:.1f} µs vs single-object "
                f"{costs['encode_single_us']:.1f} µs vs stock AvroSerializer "
                f"{costs['encode_stock_us']:.1f} µs per encode; a whole encode is {share:.2f} % "
                "of the generate p50"
            ),
            "method": "MemeRequested encoded 20,000 times per codec in 5 alternating rounds "
            "(best round), cached schema ids",
        },
        {
            "target": "registry_throughput",
            "value": round(rates["produce_confluent"]),
            "unit": "events/s",
            "figure": (
                f"produce {rates['produce_confluent']:,.0f} vs "
                f"{rates['produce_single-object']:,.0f} events/s, consume+decode "
                f"{rates['consume_confluent']:,.0f} vs "
                f"{rates['consume_single-object']:,.0f} (Confluent vs single-object)"
            ),
            "method": f"{args.events} events per framing through EventProducer, read back",
        },
        {
            "target": "registry_generate_latency",
            "value": round(p["confluent"][0], 2),
            "unit": "ms",
            "figure": (
                f"p50/p95 {p['confluent'][0]:.1f}/{p['confluent'][1]:.1f} ms with the registry, "
                f"{p['single-object'][0]:.1f}/{p['single-object'][1]:.1f} ms without"
            ),
            "method": f"{args.requests} closed-loop generates per API, alternating, same run",
        },
    ]
    emit(SCRIPT, results)


if __name__ == "__main__":
    main()
