"""Trending through a KEDA-style rescale, on the real Kafka and Redis of the local stack.

Under a steady --rate events/s (votes and views), the trending group goes from 1 to 2 to 3
workers and back to 1, one phase of --phase-s each, as KEDA's HPA would move the Deployment; in
the middle of the 3-worker phase one worker is SIGKILLed and replaced (the Deployment restores
its replica count), scale-in stops the newest worker with SIGTERM (a pod's shutdown). Every
move rebalances the group, and the workers that gain partitions read their state back from the
changelog (streams/changelog.py).

Measured:
- freshness: a probe vote on a fresh meme every 50 ms; Kafka's acknowledgement to the member
  being in `trending:1h` (what the API would show). `freshness_p95_ms` is the whole run's p95,
  `freshness_p95_ms_during_rescale` the p95 of the probes acknowledged within --settle-s after
  a scale move or the kill; `stale_s_max` the longest a probe waited (a probe never seen counts
  until the end of the run).
- exactness: ledger memes get votes from users who vote once (+1) and fresh views; at the end,
  with the group's lag at 0, each ledger meme's record read from the changelog must hold exactly
  the acknowledged votes (`net`) and views (the 1h window's raw engagement minus the votes, over
  the view weight): the shortfall summed is `lost_events`, the excess `double_counted_events`.
- recovery: the changelog records the workers read back per second of reading (from the
  `trending changelog read` line each bulk read logs).
- throughput: before the load, one worker drains the last --backlog of 200,000 produced events,
  against a plain confluent-kafka consumer reading all of them (benchmarks/trending.py's method).
- KEDA: the replica count loadgen/keda.py computes from the group's lag every 2 s (the schedule
  above is fixed, so that the run rescales whatever the lag; KEDA's own answer is recorded).

The load cycles a pool of pre-encoded events (Avro encoding in Python runs near 8,000 events/s
here, below the rate): repeats are decoded and checked by the worker like any event and count as
stale votes or duplicate views. Ledger and probe events are fresh.

Run: `.venv/bin/python -m benchmarks.trending_rescale [--rate 10000] [--phase-s 30]`; writes
reports/trending/rescale.json and .html. The machine's load average is recorded in the report.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from confluent_kafka import Producer

from benchmarks import trending as base
from benchmarks._result import emit
from domain.events import View, Vote
from domain.ids import new_id
from domain.settings import PROJECT_ROOT, get_settings
from loadgen.keda import load_scaled_objects, with_group_prefix
from loadgen.lag import LagReader
from producers.admin import ensure_topics
from producers.roles import TRENDING, web_port
from producers.serialization import AvroCodec
from streams.changelog import read_changelog
from streams.trending.state import MEME, MemeState

REPORT_DIR = PROJECT_ROOT / "reports" / "trending"
REDIS_DB = 12
#: The plain consumer's ceiling is read over at least this many events.
CEILING_EVENTS = 200_000
VIEW_WEIGHT = 0.1


class Workers:
    """The trending group's processes, started and stopped as the Deployment would."""

    def __init__(self, prefix: str, redis_url: str) -> None:
        self.prefix = prefix
        self.redis_url = redis_url
        self.procs: list[tuple[int, subprocess.Popen[bytes]]] = []
        self.reapers: list[threading.Thread] = []
        self.started = 0

    def start(self) -> int:
        port = base._free_port()
        self.started += 1
        env = {
            **os.environ,
            "CONSUMER_GROUP_PREFIX": self.prefix,
            "KAFKA_AUTO_OFFSET_RESET": "earliest",
            "WORKER_WEB_PORT": str(port - web_port(0, TRENDING.name)),
            "REDIS_URL": self.redis_url,
            "TRENDING_TOP_N": "100000",
            "TRENDING_VIEW_WEIGHT": str(VIEW_WEIGHT),
            "LOG_LEVEL": "INFO",
        }
        logs = PROJECT_ROOT / "artifacts" / "bench"
        logs.mkdir(parents=True, exist_ok=True)
        log = (logs / f"trending-rescale-{self.started}.log").open("wb")
        args = [sys.executable, "-m", "streams", "worker", "--role", "trending"]
        proc = subprocess.Popen(
            [*args, "--loglevel", "info"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append((port, proc))
        return port

    def stop_newest(self, sig: int = signal.SIGTERM, wait: bool = True) -> None:
        """Signals the newest worker; without `wait`, it shuts down in the background as a
        terminating pod does (30 s of grace, then SIGKILL) while the schedule goes on."""
        _, proc = self.procs.pop()
        proc.send_signal(sig)

        def reap() -> None:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

        if wait:
            reap()
        else:
            thread = threading.Thread(target=reap, daemon=True)
            thread.start()
            self.reapers.append(thread)

    def stats(self) -> list[dict[str, Any]]:
        out = []
        for port, _ in self.procs:
            result = base.stats(f"http://127.0.0.1:{port}/trending/stats/")
            if result:
                out.append(result)
        return out

    def stop_all(self) -> None:
        while self.procs:
            self.stop_newest()
        for thread in self.reapers:
            thread.join()


class Load:
    """The steady load, ledger events and probes, produced from one thread at a fixed rate."""

    def __init__(self, bootstrap: str, rate: int, pool: list[base.Message], ledger: int) -> None:
        self.producer: Producer = base.producer(bootstrap)
        self.rate = rate
        self.pool = pool
        self.codec = AvroCodec()
        self.ledger_memes = [new_id() for _ in range(ledger)]
        self.lock = threading.Lock()
        self.acked_votes: Counter[str] = Counter()
        self.acked_views: Counter[str] = Counter()
        self.probes: dict[str, float] = {}  # meme id -> Kafka ack time (perf_counter)
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def _acked(self, counter: Counter[str], meme_id: str) -> Any:
        def on_delivery(err: object, _: object) -> None:
            if err is None:
                with self.lock:
                    counter[meme_id] += 1

        return on_delivery

    def _probe_acked(self, meme_id: str) -> Any:
        def on_delivery(err: object, _: object) -> None:
            if err is None:
                with self.lock:
                    self.probes[meme_id] = time.perf_counter()

        return on_delivery

    def run(self) -> None:
        p, codec = self.producer, self.codec
        began = time.perf_counter()
        next_probe = began
        i = 0
        user = 0
        while not self.stop.is_set():
            due = began + i / self.rate
            while time.perf_counter() < due:
                p.poll(0)
                time.sleep(0.0005)
            if i % 25 == 0:  # a ledger vote and a ledger view every 25 events
                meme_id = self.ledger_memes[(i // 25) % len(self.ledger_memes)]
                user += 1
                vote = Vote(meme_id=meme_id, user_id=f"ledger-{user}", value=1)
                view = View(meme_id=meme_id)
                for topic, event, counter in (
                    ("meme.votes", vote, self.acked_votes),
                    ("meme.views", view, self.acked_views),
                ):
                    p.produce(
                        topic,
                        value=codec.encode(event),
                        key=event.key,
                        on_delivery=self._acked(counter, meme_id),
                    )
                i += 2
            else:
                topic, key, value = self.pool[i % len(self.pool)]
                self._produce(topic, key, value)
                i += 1
            if time.perf_counter() >= next_probe:
                meme_id = new_id()
                probe = Vote(meme_id=meme_id, user_id="probe", value=1)
                p.produce(
                    "meme.votes",
                    value=codec.encode(probe),
                    key=probe.key,
                    on_delivery=self._probe_acked(meme_id),
                )
                next_probe += 0.05
            p.poll(0)
        self.sent = i
        p.flush(30)

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value=value, key=key)
                return
            except BufferError:
                self.producer.poll(0.01)


class Watcher:
    """Polls `trending:1h` for the acknowledged probes every 10 ms."""

    def __init__(self, redis_url: str, load: Load) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.load = load
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            with self.load.lock:
                pending = [m for m in self.load.probes if m not in self.seen]
            if pending:
                with self.client.pipeline(transaction=False) as pipe:
                    for m in pending:
                        pipe.zscore("trending:1h", m)
                    found = pipe.execute()
                now = time.perf_counter()
                for m, score in zip(pending, found, strict=True):
                    if score is not None:
                        self.seen[m] = now
            time.sleep(0.01)


def keda_sampler(
    bootstrap: str, prefix: str, began: float, samples: list[dict[str, Any]], stop: threading.Event
) -> None:
    objects = with_group_prefix(load_scaled_objects(), prefix)
    trending = next(o for o in objects if o.name == "memestream-trending")
    reader = LagReader(bootstrap)
    pairs = [(t.consumer_group, t.topic) for t in trending.kafka_triggers]
    while not stop.wait(2.0):
        lags = reader.read_many(pairs)
        samples.append(
            {
                "t": round(time.perf_counter() - began, 2),
                "lag": sum(lag.total for lag in lags.values()),
                "keda_replicas": trending.desired(lags),
            }
        )


def group_lag(bootstrap: str, group: str) -> int:
    """The group's lag on the loaded topics (it never commits on the quiet ones it starts at
    the end of, which KEDA's reading counts as lag from offset 0)."""
    reader = LagReader(bootstrap)
    return sum(reader.read(group, t).total for t in base.TOPICS)


def ledger_check(
    bootstrap: str, topic: str, load: Load
) -> tuple[int, int, dict[str, dict[str, int]]]:
    """(lost, double counted, per-meme detail) of the ledger memes, from the changelog."""
    tables, _ = read_changelog({"bootstrap.servers": bootstrap}, topic, range(6))
    records = {k: v for table in tables.values() for k, v in table.items()}
    lost = double = 0
    detail: dict[str, dict[str, int]] = {}
    for meme_id in load.ledger_memes:
        want_votes, want_views = load.acked_votes[meme_id], load.acked_views[meme_id]
        data = records.get(MEME + meme_id.encode())
        votes = views = 0
        if data is not None:
            state = MemeState.decode(data)
            raw = sum(bucket[1] for bucket in state.buckets[0].values())
            votes = state.net
            views = round((raw - votes) / VIEW_WEIGHT)
        lost += max(0, want_votes - votes) + max(0, want_views - views)
        double += max(0, votes - want_votes) + max(0, views - want_views)
        detail[meme_id] = {"votes": votes, "want_votes": want_votes, "views": views}
        detail[meme_id]["want_views"] = want_views
    return lost, double, detail


def throughput(
    bootstrap: str, prefix: str, redis_url: str, backlog: int, workers: Workers
) -> dict[str, float]:
    """One worker through the last `backlog` events of a larger produced set vs the plain
    consumer through all of it (a short read is mostly what librdkafka prefetched)."""
    total = max(backlog, CEILING_EVENTS)
    events = base.make_events(total, 5_000, 50_000, seed=5)
    start = base.end_offsets(bootstrap)
    base.produce_all(bootstrap, events)
    end = base.end_offsets(bootstrap)
    raw = base.raw_consume(bootstrap, start, total, decode=False)
    skip = 1 - backlog / total
    offsets = {tp: start[tp] + int((end[tp] - start[tp]) * skip) for tp in start}
    base.set_group_offsets(bootstrap, f"{prefix}-trending", offsets)
    port = workers.start()
    rate, _ = base.worker_rate(
        f"http://127.0.0.1:{port}/trending/stats/",
        sum(end[tp] - offsets[tp] for tp in start),
        workers.procs[-1][1],
    )
    return {"plain_consumer_events_per_s": raw, "worker_events_per_s": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--phase-s", type=float, default=30.0)
    parser.add_argument("--settle-s", type=float, default=15.0)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--ledger", type=int, default=200, help="ledger memes")
    parser.add_argument(
        "--out", default="rescale", help="report name under reports/trending/ (.json, .html)"
    )
    parser.add_argument(
        "--drain-s", type=float, default=300.0, help="the longest wait for the lag to reach 0"
    )
    args = parser.parse_args()

    settings = get_settings()
    bootstrap = settings.kafka_bootstrap_servers
    redis_url = f"{settings.redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"
    ensure_topics(settings)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    group = f"{prefix}-trending"
    redis.Redis.from_url(redis_url).flushdb()
    workers = Workers(prefix, redis_url)
    load_before = os.getloadavg()
    print(f"cores: {os.cpu_count()}  load average at start: {load_before}")
    try:
        figures = throughput(bootstrap, prefix, redis_url, args.backlog, workers)
        ratio = figures["worker_events_per_s"] / figures["plain_consumer_events_per_s"]
        print(
            f"throughput: one worker {figures['worker_events_per_s']:,.0f} events/s, plain "
            f"consumer {figures['plain_consumer_events_per_s']:,.0f} events/s ({ratio:.2f})"
        )
        pool = base.make_events(min(60_000, args.rate * 6), 5_000, 50_000, seed=6)
        load = Load(bootstrap, args.rate, pool, args.ledger)
        watcher = Watcher(redis_url, load)
        began = time.perf_counter()
        samples: list[dict[str, Any]] = []
        stop_keda = threading.Event()
        keda = threading.Thread(
            target=keda_sampler, args=(bootstrap, prefix, began, samples, stop_keda), daemon=True
        )
        load.thread.start()
        watcher.thread.start()
        keda.start()
        events: list[dict[str, Any]] = []
        loads: list[tuple[float, float]] = []

        def mark(what: str) -> None:
            at = round(time.perf_counter() - began, 2)
            events.append({"t": at, "event": what, "replicas": len(workers.procs)})
            print(f"  t={at:6.1f} s  {what}  ({len(workers.procs)} workers)")

        def wait(seconds: float) -> None:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                loads.append((time.perf_counter() - began, os.getloadavg()[0]))
                time.sleep(min(1.0, max(0.0, end - time.perf_counter())))

        mark("load on, 1 worker")
        wait(args.phase_s)
        workers.start()
        mark("scale out to 2")
        wait(args.phase_s)
        workers.start()
        mark("scale out to 3")
        wait(args.phase_s / 2)
        workers.stop_newest(signal.SIGKILL)
        mark("SIGKILL of one worker")
        workers.start()
        mark("replacement started")
        wait(args.phase_s / 2)
        workers.stop_newest(wait=False)
        mark("scale in to 2")
        wait(args.phase_s)
        workers.stop_newest(wait=False)
        mark("scale in to 1")
        wait(args.phase_s)
        load.stop.set()
        load.thread.join(timeout=60)
        mark("load off")
        deadline = time.perf_counter() + args.drain_s
        lag = group_lag(bootstrap, group)
        while lag > 0 and time.perf_counter() < deadline:
            time.sleep(1.0)
            lag = group_lag(bootstrap, group)
        mark(f"drained (lag {lag})")
        time.sleep(3.0)  # the last batch's sets and the watcher's last poll
        ended = time.perf_counter()
        watcher.stop.set()
        stop_keda.set()
        watcher.thread.join(timeout=10)
        stats = workers.stats()
        topic = f"{group}-state-changelog"
        lost, double, detail = ledger_check(bootstrap, topic, load)
    finally:
        workers.stop_all()
        base.cleanup(bootstrap, prefix, redis_url)

    probes = sorted(load.probes.items(), key=lambda item: item[1])
    latency = [
        (acked - began, (watcher.seen.get(m, ended) - acked), m in watcher.seen)
        for m, acked in probes
    ]
    moves = [e["t"] for e in events if e["event"].startswith(("scale", "SIGKILL"))]
    during = [lat for t, lat, _ in latency if any(0 <= t - m <= args.settle_s for m in moves)]
    all_lat = [lat for _, lat, _ in latency]
    read = sum(s["recovered_records"] for s in stats)
    # Every worker's reads: the log lines of each process carry the records and seconds.
    reads = recovery_reads()
    recovered = sum(r for r, _ in reads) or read
    read_s = sum(s for _, s in reads) or 1e-9
    load_avg = [v for _, v in loads]
    summary = {
        "recovery_records_per_s": round(recovered / read_s),
        "recovery_records": recovered,
        "freshness_p95_ms": round(base.percentile(all_lat, 95) * 1000),
        "freshness_p50_ms": round(base.percentile(all_lat, 50) * 1000),
        "freshness_p95_ms_during_rescale": round(base.percentile(during, 95) * 1000),
        "stale_s_max": round(max(all_lat), 2),
        "lost_events": lost,
        "drained": lag == 0,  # False: lost_events counts what was still unprocessed too
        "double_counted_events": double,
        "probes": len(latency),
        "probes_never_seen": sum(1 for *_, ok in latency if not ok),
        "ledger_votes": sum(load.acked_votes.values()),
        "ledger_views": sum(load.acked_views.values()),
        "offered_events_per_s": args.rate,
        "phase_s": args.phase_s,
        "throughput_ratio_per_worker": round(ratio, 3),
        **{k: round(v) for k, v in figures.items()},
        "cores": os.cpu_count(),
        "load_average_mean": round(statistics.fmean(load_avg), 2) if load_avg else None,
        "load_average_max": round(max(load_avg), 2) if load_avg else None,
    }
    report = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "summary": summary,
        "method": __doc__,
        "phases": events,
        "keda": samples,
        "probes": [
            {"t": round(t, 3), "ms": round(lat * 1000, 1), "seen": ok} for t, lat, ok in latency
        ],
        "load_average": [{"t": round(t, 1), "load1": v} for t, v in loads],
        "recovery_reads": [{"records": r, "s": s} for r, s in reads],
        "ledger": detail,
    }
    write_report(report, args.out)
    for key, value in summary.items():
        print(f"  {key}: {value}")
    emit(
        "trending_rescale",
        [
            {
                "target": "trending_rescale_freshness_p95",
                "value": summary["freshness_p95_ms"],
                "unit": "ms",
                "figure": f"p95 {summary['freshness_p95_ms']} ms over the run, "
                f"{summary['freshness_p95_ms_during_rescale']} ms after scale moves, "
                f"stale at most {summary['stale_s_max']} s, {lost} lost, {double} double counted",
                "method": "1 -> 2 -> 3 (SIGKILL) -> 2 -> 1 trending workers at "
                f"{args.rate:,} events/s offered",
            },
            {
                "target": "trending_recovery",
                "value": summary["recovery_records_per_s"],
                "unit": "records/s",
                "figure": f"{recovered:,} changelog records read back during the rescales",
                "method": "bulk changelog reads (streams/changelog.py), records over read time",
            },
        ],
    )


def recovery_reads() -> list[tuple[int, float]]:
    """(records, seconds) of every bulk changelog read the rescale's workers logged."""
    out = []
    for path in sorted((PROJECT_ROOT / "artifacts" / "bench").glob("trending-rescale-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if "trending changelog read:" not in line:
                continue
            msg = orjson.loads(line)["msg"] if line.startswith("{") else line
            words = msg.split()
            records = int(words[words.index("read:") + 1])
            seconds = float(words[words.index("in") + 1])
            out.append((records, seconds))
    return out


def write_report(report: dict[str, Any], name: str) -> None:
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / f"{name}.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    (REPORT_DIR / f"{name}.html").write_text(render_html(report))


def render_html(report: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=[3, 1])
    probes = report["probes"]
    ax.plot([p["t"] for p in probes], [p["ms"] for p in probes], ".", ms=2, label="probe")
    ax.axhline(1000, color="red", lw=0.8, ls="--", label="1 s target")
    for phase in report["phases"]:
        ax.axvline(phase["t"], color="grey", lw=0.8)
        ax.annotate(
            phase["event"],
            (phase["t"], 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            fontsize=7,
        )
    ax.set(ylabel="ms, Kafka ack -> in trending:1h", yscale="log", title="Freshness")
    ax.legend(fontsize="small", loc="upper right")
    t, replicas = [0.0], [1]
    for phase in report["phases"]:
        t.append(phase["t"])
        replicas.append(phase["replicas"])
    bx.step(t, replicas, where="post", label="workers")
    keda = [s for s in report["keda"] if s["keda_replicas"] is not None]
    bx.step(
        [s["t"] for s in keda],
        [s["keda_replicas"] for s in keda],
        where="post",
        label="KEDA would request",
        ls="--",
    )
    bx.set(xlabel="s", ylabel="replicas")
    bx.legend(fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode()
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in report["summary"].items()
    )
    phases = "".join(
        f"<tr><td>{p['t']}</td><td>{html.escape(p['event'])}</td><td>{p['replicas']}</td></tr>"
        for p in report["phases"]
    )
    return (
        "<!doctype html><meta charset=utf-8><title>Trending through a rescale</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
        "td{padding:2px 10px;border-bottom:1px solid #ddd}</style>"
        f"<h1>Trending through a rescale</h1><p>{html.escape(report['generated'])}</p>"
        f"<h2>Summary</h2><table>{rows}</table>"
        f'<h2>Freshness and replicas</h2><img alt="freshness over time" '
        f'src="data:image/png;base64,{png}">'
        f"<h2>Phases</h2><table><tr><th>s</th><th>event</th><th>workers</th></tr>{phases}"
        f"</table><h2>Method</h2><pre>{html.escape(report['method'] or '')}</pre>"
    )


if __name__ == "__main__":
    main()
