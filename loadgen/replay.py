"""Open-loop replay: every record leaves at its scheduled time, answered or not.

A closed loop (send, wait, send) slows down when the server does and hides exactly the
latency it should measure (coordinated omission). Here a scheduler sleeps until each
record's `at / speed`, starts it as its own task and moves on; latency counts from the
scheduled time, so a stalled server or a saturated client shows up as latency. In-flight
requests beyond `max_in_flight` are skipped as "client saturated" rather than queued, and
requests still unanswered when the drain ends are cancelled and counted as errors at the
latency they had reached, so the slowest requests are never dropped from the figures.

The generator checks itself: each request's lateness (when it really started, including any
wait for a free connection, minus when it was scheduled) goes into an HDR histogram, and the
report marks a run whose lateness p99 exceeds 10 ms invalid. Times are `time.monotonic()`
(system-wide on Linux), so worker processes (loadgen/workers.py) share one start instant.

While it runs, an observer samples consumer lag (and the replicas KEDA would want for it)
and the RSS of the platform's processes, and a ticker feeds the live display.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from loadgen.keda import ScaledObject
from loadgen.lag import GroupLag, LagReader
from loadgen.memory import RssSampler
from loadgen.scenarios import NEEDS_MEME
from loadgen.stats import Outcome, Stats
from loadgen.trace import TraceHeader, TraceRecord


class Target(Protocol):
    name: str

    async def setup(self) -> None: ...

    async def close(self) -> None: ...

    async def execute(self, record: TraceRecord, meme_id: str | None) -> Outcome: ...


@dataclass(slots=True)
class Observer:
    """What to sample besides the requests themselves."""

    lag_reader: LagReader | None = None
    lag_pairs: list[tuple[str, str]] = field(default_factory=list)
    scaled_objects: list[ScaledObject] = field(default_factory=list)
    rss: RssSampler | None = None
    interval_s: float = 2.0


@dataclass(slots=True)
class Samples:
    lag: list[dict[str, Any]] = field(default_factory=list)
    rss: list[dict[str, Any]] = field(default_factory=list)

    def latest_lag(self) -> dict[str, int]:
        return {k: v["total"] for k, v in (self.lag[-1]["lags"] if self.lag else {}).items()}

    def latest_keda(self) -> dict[str, int | None]:
        return dict(self.lag[-1]["keda"]) if self.lag else {}


@dataclass(slots=True)
class ReplayResult:
    stats: Stats
    samples: Samples
    target: str
    speed: float
    started_at: str
    duration_s: float
    scheduled: int
    undrained: int
    header: TraceHeader | None = None


Tick = Callable[[float, Stats, Samples], None]
#: Records started in one go before the scheduler yields to the requests it started.
_BURST = 64


def _lag_sample(observer: Observer, t: float) -> dict[str, Any] | None:
    if observer.lag_reader is None or not observer.lag_pairs:
        return None
    lags: dict[tuple[str, str], GroupLag] = observer.lag_reader.read_many(observer.lag_pairs)
    return {
        "t": round(t, 3),
        "lags": {
            f"{g}/{topic}": {
                "total": lag.total,
                "partitions": [p.lag for p in lag.partitions],
            }
            for (g, topic), lag in lags.items()
        },
        "keda": {so.name: so.desired(lags) for so in observer.scaled_objects},
    }


async def _observe(observer: Observer, samples: Samples, start: float, stop: asyncio.Event) -> None:
    while True:
        t = time.monotonic() - start
        if observer.rss is not None:
            samples.rss.append({"t": round(t, 3), "mb": observer.rss.sample()})
        try:
            lag = await asyncio.to_thread(_lag_sample, observer, t)
        except Exception:  # a sampling hiccup must not end the replay
            lag = None
        if lag is not None:
            samples.lag.append(lag)
        try:
            await asyncio.wait_for(stop.wait(), timeout=observer.interval_s)
            return
        except TimeoutError:
            continue


async def _ticker(tick: Tick, stats: Stats, samples: Samples, start: float) -> None:
    while True:
        tick(time.monotonic() - start, stats, samples)
        await asyncio.sleep(1.0)


async def replay(
    records: Iterable[TraceRecord],
    target: Target,
    *,
    speed: float = 1.0,
    max_in_flight: int = 20_000,
    drain_timeout_s: float = 60.0,
    observer: Observer | None = None,
    tick: Tick | None = None,
    header: TraceHeader | None = None,
    start_at: float | None = None,
    refs: dict[int, str] | None = None,
    on_created: Callable[[int, str], None] | None = None,
) -> ReplayResult:
    """Replays `records` (sorted by `at`) against `target`.

    Worker processes pass `start_at` (a `time.monotonic()` instant shared by all of them),
    `refs` (trace seq -> meme id, filled by the other workers too) and `on_created` (to tell
    them about the memes this one created).
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    now = time.monotonic
    stats = Stats()
    samples = Samples()
    refs = {} if refs is None else refs
    in_flight: set[asyncio.Task[None]] = set()
    cutoff: float | None = None  # when the drain gave up on the requests still running
    await target.setup()
    # The trace's records are long-lived: freezing them keeps full GC passes (tens of ms over
    # a 100,000-record trace) out of the schedule.
    gc.collect()
    gc.freeze()
    if start_at is not None and start_at > now():
        await asyncio.sleep(start_at - now())
    start = now() if start_at is None else start_at
    started_at = datetime.now(UTC).isoformat()
    stop = asyncio.Event()
    background = []
    if observer is not None:
        background.append(asyncio.create_task(_observe(observer, samples, start, stop)))
    if tick is not None:
        background.append(asyncio.create_task(_ticker(tick, stats, samples, start)))

    async def run(record: TraceRecord, intended: float) -> None:
        meme_id: str | None = None
        if record.action in NEEDS_MEME:
            meme_id = refs.get(int(record.payload.get("ref", -1)))
            if meme_id is None:
                stats.skip(record.action, "referenced meme not created")
                return
        stats.in_flight += 1
        sent = now()
        try:
            outcome = await target.execute(record, meme_id)
        except asyncio.CancelledError:
            if cutoff is None:  # cancelled for another reason: the replay itself is stopping
                raise
            unanswered = Outcome(error=f"unanswered after the {drain_timeout_s:g} s drain")
            stats.record(record.action, intended - start, cutoff - intended, unanswered)
            raise
        except Exception as exc:  # a bug in one action must not stop the replay
            outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
        finally:
            stats.in_flight -= 1
        done = now()
        if outcome.skipped is None:
            stats.late(intended - start, sent - intended, outcome.queued_s)
        if outcome.time_to_headers is not None:
            latency = (sent - intended) + outcome.time_to_headers
        else:
            latency = done - intended
        stats.record(record.action, intended - start, latency, outcome)
        if record.action == "vote" and meme_id and outcome.skipped is None:
            vote = (meme_id, record.user, int(record.payload.get("value", 1)))
            stats.sent_votes.append(vote)
            if outcome.kind == "ok":
                stats.votes.append(vote)
        if outcome.created and record.action == "generate":
            refs[record.seq] = outcome.created[0]
            if on_created is not None:
                on_created(record.seq, outcome.created[0])

    scheduled = 0
    burst = 0
    try:
        for record in records:
            intended = start + record.at / speed
            delay = intended - now()
            if delay > 0:
                burst = 0
                await asyncio.sleep(delay)
            elif (burst := burst + 1) >= _BURST:
                burst = 0
                await asyncio.sleep(0)  # let the requests already started leave
            scheduled += 1
            if len(in_flight) >= max_in_flight:
                stats.skip(record.action, "client saturated")
                continue
            task = asyncio.create_task(run(record, intended))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=drain_timeout_s)
        undrained = len(in_flight)
        if in_flight:
            cutoff = now()
            for task in in_flight:
                task.cancel()
            # Let each record its error before the target's client closes under it.
            await asyncio.gather(*in_flight, return_exceptions=True)
    finally:
        stop.set()
        for task in background:
            if not task.done():
                task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await target.close()
        gc.unfreeze()
    if tick is not None:
        tick(now() - start, stats, samples)
    return ReplayResult(
        stats=stats,
        samples=samples,
        target=target.name,
        speed=speed,
        started_at=started_at,
        duration_s=now() - start,
        scheduled=scheduled,
        undrained=undrained,
        header=header,
    )
