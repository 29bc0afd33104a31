"""Trending throughput and freshness, on the real Kafka and Redis of the local stack.

1. Produces N votes and views (Zipf over memes) into `meme.votes` and `meme.views`.
2. Ceiling: a plain confluent-kafka consumer reads exactly those messages (raw, then raw plus
   Avro decoding) in this process.
3. One trending worker process (own consumer group, started at the first benchmark offset)
   processes the same messages: events/s from its `/trending/stats/` counter, and the ratio.
4. Freshness: a sustained load with probe votes on fresh memes; the time from Kafka's
   acknowledgement of a probe (when the API would answer 202) to its member appearing in
   `trending:1h`: p50/p95/p99, at half the throughput measured in 3 (what the worker sustains)
   and at --rate events/s (beyond it, the figure is the backlog's queueing time).
5. Recovery: the worker is stopped and started again with the same group; the changelog
   records it read back in bulk per second of reading, and the time from the process start to
   its state loaded.

Run: `.venv/bin/python -m benchmarks.trending [--events 200000] [--rate 10000]` (BENCH_QUICK=1:
a quarter of the events and a 10 s freshness phase). The last line is the `RESULT` line of
benchmarks/README.md. The events stay in the shared topics (other consumers see votes on memes
that do not exist); the worker's changelog topic, consumer group and Redis database are removed
at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import redis
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from benchmarks._result import emit
from domain.events import View, Vote
from domain.ids import new_id
from domain.settings import PROJECT_ROOT, get_settings
from memestream.testing import processes
from producers.admin import ensure_topics
from producers.roles import TRENDING, web_port
from producers.serialization import AvroCodec

TOPICS = ("meme.votes", "meme.views")
PARTITIONS = 6
REDIS_DB = 13

Message = tuple[str, bytes, bytes]


def make_events(n: int, memes: int, users: int, seed: int = 1) -> list[Message]:
    rng = random.Random(seed)
    codec = AvroCodec()
    meme_ids = [new_id() for _ in range(memes)]
    weights = [1 / (i + 1) ** 1.1 for i in range(memes)]  # Zipf-like popularity
    chosen = rng.choices(meme_ids, weights, k=n)
    now = time.time()
    out: list[Message] = []
    for i, meme_id in enumerate(chosen):
        at = datetime.fromtimestamp(now - 60 + 60 * i / n + rng.uniform(-5, 0), UTC)
        if i % 2:
            event: Vote | View = View(meme_id=meme_id, occurred_at=at)
            topic = "meme.views"
        else:
            user = f"user-{rng.randrange(users)}"
            event = Vote(
                meme_id=meme_id, user_id=user, value=rng.choice((1, 1, 1, -1, 0)), occurred_at=at
            )
            topic = "meme.votes"
        out.append((topic, event.key, codec.encode(event)))
    return out


def producer(bootstrap: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )


def end_offsets(bootstrap: str) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
    try:
        return {
            (t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
            for t in TOPICS
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()


def produce_all(bootstrap: str, events: list[Message]) -> float:
    p = producer(bootstrap)
    start = time.perf_counter()
    for topic, key, value in events:
        while True:
            try:
                p.produce(topic, value=value, key=key)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(60)
    return len(events) / (time.perf_counter() - start)


def raw_consume(bootstrap: str, start: dict[tuple[str, int], int], n: int, decode: bool) -> float:
    codec = AvroCodec()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.min.bytes": 1,
            "queued.min.messages": 100_000,
        }
    )
    consumer.assign([TopicPartition(t, p, o) for (t, p), o in start.items()])
    count = 0
    began = time.perf_counter()
    try:
        while count < n:
            for message in consumer.consume(num_messages=5000, timeout=1.0):
                if message.error():
                    continue
                if decode:
                    codec.decode(message.value())
                count += 1
    finally:
        elapsed = time.perf_counter() - began
        consumer.close()
    return count / elapsed


def set_group_offsets(bootstrap: str, group: str, start: dict[tuple[str, int], int]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = [TopicPartition(t, p, o) for (t, p), o in start.items()]
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    admin.alter_consumer_group_offsets(request)[group].result(timeout=30)


def start_worker(prefix: str, port: int, redis_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONSUMER_GROUP_PREFIX": prefix,
        "KAFKA_AUTO_OFFSET_RESET": "latest",
        "WORKER_WEB_PORT": str(port - web_port(0, TRENDING.name)),
        "REDIS_URL": redis_url,
        "TRENDING_TOP_N": "100000",
        "LOG_LEVEL": "WARNING",
    }
    logs = PROJECT_ROOT / "artifacts" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    log = (logs / "trending-worker.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "streams", "worker", "--role", "trending", "--loglevel", "warning"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stats(stats_url: str) -> dict[str, int] | None:
    try:
        result: dict[str, int] = httpx.get(stats_url, timeout=1.0).json()
    except (httpx.HTTPError, ValueError):
        return None
    return result


def processed(stats_url: str) -> int | None:
    result = stats(stats_url)
    return int(result["processed"]) if result else None


def recovery(
    proc: subprocess.Popen[bytes], prefix: str, port: int, redis_url: str, stats_url: str
) -> tuple[subprocess.Popen[bytes], float, int, float]:
    """Restarts the worker; seconds from process start to its state loaded, the changelog
    records it read, and their rate (records over the bulk reads' time)."""
    before = stats(stats_url) or {}
    proc.terminate()
    proc.wait(timeout=30)
    began = time.perf_counter()
    proc = start_worker(prefix, port, redis_url)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        now = stats(stats_url)
        if now and now.get("loaded") and now["memes"] >= before.get("memes", 0):
            read = int(now["recovered_records"])
            return proc, time.perf_counter() - began, read, read / max(now["recovery_s"], 1e-9)
        time.sleep(0.1)
    raise TimeoutError("the restarted worker did not load its state")


def worker_rate(stats_url: str, n: int, proc: subprocess.Popen[bytes]) -> tuple[float, float]:
    """Events/s between 10 % and 90 % of the backlog, and the whole run's average."""
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the trending worker exited: artifacts/bench/trending-worker.log")
        count = processed(stats_url)
        if count is not None:
            samples.append((time.perf_counter(), count))
            if count >= n:
                break
        time.sleep(0.05)
    active = [(t, c) for t, c in samples if c > 0]
    first = next((t, c) for t, c in active)
    low = next((t, c) for t, c in active if c >= 0.1 * n)
    high = next((t, c) for t, c in active if c >= 0.9 * n)
    last = active[-1]
    return (high[1] - low[1]) / (high[0] - low[0]), (last[1] - first[1]) / (last[0] - first[0])


def freshness(
    bootstrap: str, redis_url: str, stats_url: str, rate: int, seconds: float, memes: int
) -> tuple[list[float], float, float]:
    """Sustained load plus probes; returns probe latencies (s), offered and processed rates."""
    load = make_events(int(rate * seconds), memes, 20_000, seed=2)
    p = producer(bootstrap)
    codec = AvroCodec()
    acked: dict[str, float] = {}
    lock = threading.Lock()

    def on_probe(err: object, message: object, meme_id: str) -> None:
        if err is None:
            with lock:
                acked[meme_id] = time.perf_counter()

    seen: dict[str, float] = {}
    stop = threading.Event()
    client = redis.Redis.from_url(redis_url)

    def watch() -> None:
        while not stop.is_set() or len(seen) < len(acked):
            with lock:
                pending = [m for m in acked if m not in seen]
            if pending:
                with client.pipeline(transaction=False) as pipe:
                    for m in pending:
                        pipe.zscore("trending:1h", m)
                    found = pipe.execute()
                now = time.perf_counter()
                for m, score in zip(pending, found, strict=True):
                    if score is not None:
                        seen[m] = now
            if stop.is_set() and time.perf_counter() - stopped_at[0] > 10:
                return
            # 10 ms: fine enough for a 1 s target, and a pipeline of every pending probe each
            # 2 ms loaded Redis and the shared cores more the further the worker fell behind.
            time.sleep(0.01)

    stopped_at = [0.0]
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    before = processed(stats_url) or 0
    began = time.perf_counter()
    next_probe = began
    for i, (topic, key, value) in enumerate(load):
        due = began + i / rate
        while time.perf_counter() < due:
            p.poll(0)
            time.sleep(0.0005)
        p.produce(topic, value=value, key=key)
        if time.perf_counter() >= next_probe:
            meme_id = new_id()
            vote = Vote(meme_id=meme_id, user_id="probe", value=1)
            p.produce(
                "meme.votes",
                value=codec.encode(vote),
                key=vote.key,
                on_delivery=lambda e, m, meme_id=meme_id: on_probe(e, m, meme_id),
            )
            next_probe += 0.05
        p.poll(0)
    p.flush(30)
    offered = len(load) / (time.perf_counter() - began)
    after_deadline = time.perf_counter() + 30
    while (processed(stats_url) or 0) - before < len(load) and time.perf_counter() < after_deadline:
        time.sleep(0.05)
    handled = ((processed(stats_url) or 0) - before) / (time.perf_counter() - began)
    stopped_at[0] = time.perf_counter()
    stop.set()
    watcher.join(timeout=15)
    client.close()
    latencies = [seen[m] - acked[m] for m in acked if m in seen]
    missing = len(acked) - len(latencies)
    if missing:
        print(f"  probes never seen: {missing} of {len(acked)}")
    return latencies, offered, handled


def cleanup(bootstrap: str, prefix: str, redis_url: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{prefix}-")]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            future.exception()
    groups = admin.delete_consumer_groups([f"{prefix}-trending"], request_timeout=30)
    for future in groups.values():
        future.exception()
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    quick = os.environ.get("BENCH_QUICK") == "1"
    parser.add_argument("--events", type=int, default=50_000 if quick else 200_000)
    parser.add_argument("--memes", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=10_000, help="freshness phase events/s")
    parser.add_argument(
        "--seconds", type=float, default=10.0 if quick else 20.0, help="freshness phase length"
    )
    args = parser.parse_args()

    settings = get_settings()
    bootstrap = settings.kafka_bootstrap_servers
    redis_url = f"{settings.redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"
    ensure_topics(settings)
    print(
        f"cores: {os.cpu_count()}  events: {args.events:,} (half votes, half views)  "
        f"memes: {args.memes:,}  users: {args.users:,}"
    )

    events = make_events(args.events, args.memes, args.users)
    start = end_offsets(bootstrap)
    print(f"produced: {produce_all(bootstrap, events):,.0f} events/s")

    raw = raw_consume(bootstrap, start, len(events), decode=False)
    decoded = raw_consume(bootstrap, start, len(events), decode=True)
    print(
        f"ceiling, plain confluent-kafka consumer: {raw:,.0f} events/s raw, "
        f"{decoded:,.0f} events/s with Avro decoding"
    )

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    set_group_offsets(bootstrap, f"{prefix}-trending", start)
    port = int(os.environ.get("BENCH_WORKER_PORT", "0")) or _free_port()
    proc = start_worker(prefix, port, redis_url)
    stats_url = f"http://127.0.0.1:{port}/trending/stats/"
    try:
        steady, average = worker_rate(stats_url, len(events), proc)
        print(
            f"trending worker (1 process): {steady:,.0f} events/s (10-90 % of the backlog), "
            f"{average:,.0f} events/s overall"
        )
        print(
            f"ratio to the raw ceiling: {steady / raw:.2f}  "
            f"(to the decoding ceiling: {steady / decoded:.2f})"
        )
        figures = []
        for rate in (min(args.rate, int(steady / 2)), args.rate):
            latencies, offered, handled = freshness(
                bootstrap, redis_url, stats_url, rate, args.seconds, args.memes
            )
            p50, p95, p99 = (percentile(latencies, q) * 1000 for q in (50, 95, 99))
            fresh = (
                f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms, "
                f"max {max(latencies) * 1000:.0f} ms"
            )
            print(
                f"freshness at {offered:,.0f} events/s offered ({handled:,.0f} processed/s), "
                f"{len(latencies)} probes, Kafka ack -> in trending:1h: {fresh}"
            )
            figures.append((p95, f"{fresh} at {offered:,.0f} events/s"))
        proc, recovered_s, records, rate = recovery(proc, prefix, port, redis_url, stats_url)
        print(
            f"recovery (bulk changelog read): {records:,} changelog records read at "
            f"{rate:,.0f} records/s, {recovered_s:.1f} s from process start to state loaded"
        )
    finally:
        processes.stop(proc)
        cleanup(bootstrap, prefix, redis_url)
    emit(
        "trending",
        [
            {
                "target": "trending_throughput",
                "value": round(steady),
                "unit": "events/s",
                "figure": f"{steady:,.0f} events/s on one worker process, "
                f"{steady / raw:.2f} of a plain consumer's {raw:,.0f}/s "
                f"({steady / decoded:.2f} of {decoded:,.0f}/s decoding)",
                "method": f"{len(events):,} votes and views backlog through one trending worker "
                "(10-90 % of the backlog), plain confluent-kafka consumer as the ceiling",
            },
            {
                "target": "trending_freshness_p95",
                "value": round(figures[0][0]),
                "unit": "ms",
                "figure": f"{figures[0][1]}; {figures[1][1]}",
                "method": "probe votes every 50 ms during a sustained load: Kafka ack to the "
                "member being in trending:1h",
            },
            {
                "target": "trending_recovery",
                "value": round(rate),
                "unit": "records/s",
                "figure": f"{records:,} changelog records at {rate:,.0f} records/s, "
                f"{recovered_s:.1f} s from a restart to the state loaded",
                "method": "a restarted worker reads its partitions' changelog in bulk "
                "(streams/changelog.py); records over the reads' time",
            },
        ],
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
