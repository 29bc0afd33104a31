"""Live feed at scale: 10,000 SSE then 10,000 more WebSocket clients on ONE API process.

Clients run in two separate processes on the same machine (loopback only, a bounded number
of connections), speaking raw HTTP/SSE and raw RFC 6455 so the client side stays cheap. Each
broadcast is a FeedEvent produced to a private feed topic carrying its send time
(`time.time()` in the `score` field); a client's latency is its receive time minus that, so
the figure is the whole path: producer -> Kafka -> the API's relay -> every client socket.

Figures: delivery p50/p99 at 10,000 SSE and at 20,000 SSE + WebSocket, the API process's RSS
per connection (RSS growth over the idle baseline divided by connections) and whether all
20,000 were held (connected, still open after the broadcasts, counted by the server).
`BENCH_QUICK=1` uses 2,000 + 2,000 clients; `BENCH_FEED_FIRST=ws` connects the WebSocket clients
first, so the 10,000 figure is theirs. Raises RLIMIT_NOFILE (root may) first.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import re
import resource
import sys
import time
from multiprocessing.connection import Connection

import httpx
import psutil
from confluent_kafka.admin import NewTopic

from benchmarks._platform import store_env
from benchmarks._result import Result, emit
from domain.events import FeedEvent, FeedKind
from domain.ids import new_id
from domain.settings import get_settings
from memestream.testing.processes import ARTIFACTS, free_port, process, wait_for_http
from producers.admin import admin_client
from producers.producer import EventProducer

QUICK = os.environ.get("BENCH_QUICK") == "1"
PER_KIND = 2_000 if QUICK else 10_000
BROADCASTS = 20
#: The kind that connects first: the single-kind figure at PER_KIND is this kind's.
FIRST = os.environ.get("BENCH_FEED_FIRST", "sse")
KINDS = ("ws", "sse") if FIRST == "ws" else ("sse", "ws")
BROADCAST_GAP_S = 0.25
CONNECT_BATCH = 250
SCORE = re.compile(rb'"score":([0-9.eE+-]+)')
WS_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
SUBSCRIBE = b'{"type":"subscribe","channels":["new"]}'


def raise_fd_limit(want: int = 65_536) -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, PermissionError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---- clients (run in child processes) ------------------------------------------------------
class Stats:
    def __init__(self) -> None:
        self.latencies: list[tuple[float, float]] = []  # (send time, latency) per delivery
        self.connected = 0
        self.failed = 0
        self.closed = 0


def masked(opcode: int, payload: bytes) -> bytes:
    """A client frame; the all-zero mask key keeps the payload as is (RFC 6455 allows it)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


class Client(asyncio.Protocol):
    def __init__(self, kind: str, port: int, stats: Stats, ready: asyncio.Future[bool]) -> None:
        self.kind, self.port, self.stats, self.ready = kind, port, stats, ready
        self.buffer = bytearray()
        self.open = False
        self.transport: asyncio.Transport | None = None
        # SSE bytes as they arrived, parsed between broadcasts (`parse_received`): the
        # receive time is taken on arrival either way, and the client's parsing would
        # otherwise compete with the server it measures for the same two cores.
        self.received: list[tuple[float, bytes]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.kind == "sse":
            request = b"GET /api/feed/stream?channels=new HTTP/1.1\r\nHost: bench\r\n\r\n"
        else:
            request = (
                b"GET /api/feed/ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: "
                + WS_KEY
                + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
        transport.write(request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if self.open and self.kind == "sse":
            self.received.append((now, data))
            return
        self.buffer += data
        if not self.open:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            del self.buffer[: end + 4]
            ok = b" 200 " in status if self.kind == "sse" else b" 101 " in status
            if not ok:
                self.ready.done() or self.ready.set_result(False)
                return
            self.open = True
            if self.kind == "ws":
                assert self.transport is not None
                self.transport.write(masked(0x1, SUBSCRIBE))
            self.ready.done() or self.ready.set_result(True)
        if self.kind == "sse":
            if self.buffer:  # what came with the response head
                self.received.append((now, bytes(self.buffer)))
                self.buffer.clear()
        else:
            self.frames(now)

    def parse_received(self) -> None:
        """SSE events complete in what arrived so far; an event's time is its last byte's."""
        for now, data in self.received:
            self.buffer += data
            cut = self.buffer.rfind(b"\n\n")
            if cut < 0:
                continue
            chunk = bytes(self.buffer[: cut + 2])
            del self.buffer[: cut + 2]
            for match in SCORE.finditer(chunk):
                sent = float(match.group(1))
                self.stats.latencies.append((sent, now - sent))
        self.received.clear()

    def frames(self, now: float) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            opcode, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, at = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, at = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < at + n:
                return
            payload = bytes(buf[at : at + n])
            del buf[: at + n]
            if opcode == 0x1:
                match = SCORE.search(payload)
                if match:
                    sent = float(match.group(1))
                    self.stats.latencies.append((sent, now - sent))
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(masked(0xA, payload))
            elif opcode == 0x8:
                self.stats.closed += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open:
            self.stats.closed += 1
        self.ready.done() or self.ready.set_result(False)


async def client_main(kind: str, n: int, port: int, pipe: Connection) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    loop = asyncio.get_running_loop()
    stats = Stats()
    keep: list[Client] = []

    async def one() -> None:
        ready: asyncio.Future[bool] = loop.create_future()
        try:
            _, proto = await loop.create_connection(
                lambda: Client(kind, port, stats, ready), "127.0.0.1", port
            )
            keep.append(proto)
            ok = await asyncio.wait_for(ready, 60)
        except (OSError, TimeoutError):
            ok = False
        if ok:
            stats.connected += 1
        else:
            stats.failed += 1

    for start in range(0, n, CONNECT_BATCH):
        await asyncio.gather(*(one() for _ in range(min(CONNECT_BATCH, n - start))))
    pipe.send(("connected", stats.connected, stats.failed))
    commands: asyncio.Queue[str] = asyncio.Queue()
    loop.add_reader(pipe.fileno(), lambda: commands.put_nowait(pipe.recv()))
    while True:
        command = await commands.get()
        for client in keep:
            client.parse_received()
        if command == "count":
            pipe.send(("count", len(stats.latencies)))
        elif command == "stats":
            pipe.send(("stats", stats.latencies, stats.closed))
            stats.latencies = []
        elif command == "close":
            return


def client_process(kind: str, n: int, port: int, pipe: Connection) -> None:
    raise_fd_limit()
    asyncio.run(client_main(kind, n, port, pipe))


# ---- the benchmark -------------------------------------------------------------------------
def send_floor_us(n: int = 2_000, rounds: int = 7) -> float:
    """The machine's price of one small loopback TCP send (median of rounds, in µs): what a
    fan-out to n clients cannot go below, measured in the same run as the figures it frames."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0), backlog=n)
    port = listener.getsockname()[1]
    clients, accepted = [], []
    try:
        for _ in range(n):
            clients.append(socket.create_connection(("127.0.0.1", port)))
            accepted.append(listener.accept()[0])
        payload = b"x" * 250
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            for sock in accepted:
                sock.send(payload)
            timings.append((time.perf_counter() - started) / n * 1e6)
            for sock in clients:
                sock.recv(4096)
        return sorted(timings)[rounds // 2]
    finally:
        for sock in clients + accepted:
            sock.close()
        listener.close()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def broadcast(producer: EventProducer, topic: str, count: int = BROADCASTS) -> None:
    for _ in range(count):
        event = FeedEvent(
            meme_id=new_id(), kind=FeedKind.RENDERED, template_id="bench", score=time.time()
        )
        await producer.send(topic, event)
        await asyncio.sleep(BROADCAST_GAP_S)


def wait_for_deliveries(pipes: list[Connection], expected: int, limit_s: float = 30.0) -> None:
    """Late deliveries count too: stopping early would cut the slow tail off the p99."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        got = 0
        for pipe in pipes:
            pipe.send("count")
            got += pipe.recv()[1]
        if got >= expected:
            return
        time.sleep(0.2)


Sample = tuple[float, float]  # (send time, latency) of one delivery


def gather(pipes: list[Connection]) -> tuple[list[list[Sample]], int]:
    latencies, closed = [], 0
    for pipe in pipes:
        pipe.send("stats")
        _, values, gone = pipe.recv()
        latencies.append(values)
        closed += gone
    return latencies, closed


def per_broadcast(samples: list[Sample]) -> str:
    """First and slowest delivery of each broadcast (ms): the first is the Kafka hop plus one
    write, the spread after it the fan-out; printed so a p99 can be traced to its cause."""
    by_send: dict[float, list[float]] = {}
    for sent, latency in samples:
        by_send.setdefault(sent, []).append(latency * 1000)
    rows = [f"{min(v):.0f}-{max(v):.0f}" for _, v in sorted(by_send.items())]
    return "first-last delivery per broadcast (ms): " + " ".join(rows)


def describe(name: str, values: list[Sample], expected: int) -> str:
    ms = [latency * 1000 for _, latency in values]
    return (
        f"{name}: {len(ms):,}/{expected:,} deliveries, p50 {pct(ms, 0.5):.1f} ms, "
        f"p99 {pct(ms, 0.99):.1f} ms, min {min(ms, default=float('nan')):.1f} ms, "
        f"max {max(ms, default=float('nan')):.1f} ms"
    )


def main() -> None:
    limit = raise_fd_limit()
    settings = get_settings()
    topic = f"bench.feed.{new_id()[-8:]}"
    admin = admin_client(settings)
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=30)
    port = free_port()
    env = store_env(settings) | {
        "API_PORT": str(port),
        "FEED_TOPIC": topic,
        "FEED_HEARTBEAT_S": "30",
        "LOG_LEVEL": "WARNING",
    }
    args = [
        "-m",
        "uvicorn",
        "api.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ws",
        "websockets-sansio",
        "--backlog",
        "4096",
        "--no-access-log",
        "--timeout-keep-alive",
        "60",
    ]
    ctx = mp.get_context("spawn")
    results: list[Result] = []
    print(f"cores {os.cpu_count()}, fd limit {limit}, {PER_KIND:,} SSE + {PER_KIND:,} WS")
    floor = send_floor_us()
    print(f"one loopback send on this machine now: {floor:.2f} us (the fan-out's floor per client)")
    try:
        with process("bench-api-feed", args, env) as api:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/health", api)
            server = psutil.Process(api.pid)
            for _ in range(50):
                httpx.get(f"{url}/api/feed/status")
            time.sleep(1.0)
            base_rss = server.memory_info().rss
            print(f"API idle RSS {base_rss / 2**20:.1f} MiB")
            producer = EventProducer(settings, client_id="bench-feed")
            # Before any client: a fresh producer's first send also fetches metadata and a
            # producer id, which is start-up, not broadcast latency.
            asyncio.run(broadcast(producer, topic, count=1))
            pipes, procs = [], []
            stages: list[tuple[str, int, list[list[float]], int]] = []
            fanouts: list[dict[str, float]] = []
            # One descriptor per connection: what the server's own (Kafka, Redis, PostgreSQL,
            # ...) leave of its RLIMIT_NOFILE bounds the WebSocket count when it is < 20,000.
            spare = limit - server.num_fds() - 64
            first, second = KINDS
            counts = {first: min(PER_KIND, spare), second: min(PER_KIND, spare - PER_KIND)}
            if counts[second] < PER_KIND:
                print(
                    f"RLIMIT_NOFILE {limit} (cannot be raised here): "
                    f"{counts[second]:,} {second.upper()}"
                )
            kinds: list[str] = []
            for kind in KINDS:
                kinds.append(kind)
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=client_process, args=(kind, counts[kind], port, child))
                proc.start()
                started = time.monotonic()
                _, ok, failed = parent.recv()
                print(
                    f"{kind}: {ok:,} connected, {failed:,} failed "
                    f"in {time.monotonic() - started:.1f} s"
                )
                pipes.append(parent)
                procs.append(proc)
                time.sleep(2.0)
                rss = server.memory_info().rss
                held = httpx.get(f"{url}/api/feed/status").json()["local"]["connections"]
                print(f"server holds {held:,} connections, RSS {rss / 2**20:.1f} MiB")
                gather(pipes)  # drop anything from before the broadcast
                asyncio.run(broadcast(producer, topic))
                wait_for_deliveries(pipes, sum(counts[k] for k in kinds) * BROADCASTS)
                latencies, closed = gather(pipes)
                fanout = httpx.get(f"{url}/api/feed/status").json()["local"]["fanout_ms"]
                fanouts.append(fanout)
                print(f"  server fan-out per broadcast (ms): {fanout}")
                stages.append((kind, held, latencies, closed))
                for name, values in zip(kinds, latencies, strict=False):
                    print(describe(f"  {name}", values, counts[name] * BROADCASTS))
                    print(f"    {per_broadcast(values)}")
                if closed:
                    print(f"  {closed:,} connections closed by the server")
                per_connection = (rss - base_rss) / max(held, 1)
                print(f"  RSS per connection {per_connection / 1024:.1f} KiB")
                stages[-1] = (kind, held, latencies, closed)
                results_rss = per_connection
            producer.close()
            for pipe in pipes:
                pipe.send("close")
            for proc in procs:
                proc.join(timeout=30)
    finally:
        admin.delete_topics([topic])

    _, first_held, first_lat, _ = stages[0]
    one_kind = [latency for _, latency in first_lat[0]]
    _, all_held, all_lat, all_closed = stages[-1]
    everything = [latency for values in all_lat for _, latency in values]
    expected = (counts["sse"] + counts["ws"]) * BROADCASTS
    p99_10k = pct(one_kind, 0.99) * 1000
    p99_20k = pct(everything, 0.99) * 1000
    results.append(
        {
            "target": "feed_delivery",
            "value": round(p99_10k, 1),
            "unit": "ms",
            "figure": (
                f"p50 {pct(one_kind, 0.5) * 1000:.1f} ms, p99 {p99_10k:.1f} ms at "
                f"{first_held:,} {KINDS[0].upper()}; p99 {p99_20k:.1f} ms at {all_held:,} "
                "SSE+WS; server "
                f"fan-out p99 {fanouts[0].get('p99')} ms / {fanouts[-1].get('p99')} ms "
                f"(a bare loopback send {floor:.1f} us here, x10,000 = {floor * 10:.0f} ms)"
            ),
            "method": (
                f"{BROADCASTS} FeedEvents at {1 / BROADCAST_GAP_S:.0f}/s through Kafka to one "
                "API process; latency = client receive - producer send, loopback clients"
            ),
        }
    )
    wanted = counts["sse"] + counts["ws"]
    held_ok = all_held == wanted and all_closed == 0 and len(everything) == expected
    errors = (
        "no errors"
        if held_ok
        else (f"{all_closed} closed, {len(everything):,}/{expected:,} delivered")
    )
    results.append(
        {
            "target": "connections",
            "value": all_held,
            "unit": "connections",
            "figure": (
                f"{all_held:,} held ({counts['sse']:,} SSE + {counts['ws']:,} WS), {errors}"
                f"{'' if wanted == 2 * PER_KIND else f'; fd limit {limit} caps the count'}"
            ),
            "method": "raw SSE and RFC 6455 clients in two processes on the same machine",
        }
    )
    results.append(
        {
            "target": "feed_rss_per_connection",
            "value": round(results_rss / 1024, 1),
            "unit": "KiB",
            "figure": f"{results_rss / 1024:.1f} KiB RSS per connection at {all_held:,}",
            "method": "API process RSS growth over its idle baseline / connections held",
        }
    )
    print(f"logs in {ARTIFACTS}")
    emit("feed", results)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--help":
        print(__doc__)
    else:
        main()
