"""Replay across worker processes, each replaying a deterministic share of the trace.

The CLI always replays REST traces here, even with one worker: the parent's lag and RSS
sampling and live display would otherwise share the event loop that keeps the schedule. One
event loop is one core; when a trace's peak needs more, `--processes N` splits the records
by a stable hash of the trace user (crc32), so one user's actions stay in one process, in
order. Reads refer to memes other workers created (hot memes are everyone's), so each worker
tells the others every meme id it gets (a queue per worker, drained by a thread into its
`refs`). The parent waits until every worker is set up, gives them one `time.monotonic()`
start instant (system-wide on Linux), samples lag and RSS, shows progress, and merges the
workers' `Stats` (HDR histograms merge losslessly) into one `ReplayResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import queue
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadgen.replay import Observer, ReplayResult, Samples, _observe
from loadgen.rest_target import RestTarget, Route
from loadgen.stats import Stats
from loadgen.trace import TraceHeader, read_trace

#: Seconds between the last worker's "ready" and the common start.
START_MARGIN_S = 1.0
SETUP_TIMEOUT_S = 120.0


def share(user: str, processes: int) -> int:
    """Which worker replays `user`'s records (stable across runs and machines)."""
    return zlib.crc32(user.encode()) % processes


@dataclass(frozen=True, slots=True)
class RestSpec:
    """What a worker needs to build its `RestTarget` (picklable)."""

    base_url: str
    timeout_s: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)
    connections: int = 1000
    credentials: dict[str, str] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)  # pinned routes (see RestTarget)

    def target(self, index: int, processes: int) -> RestTarget:
        mine = {u: k for u, k in self.credentials.items() if share(u, processes) == index}
        return RestTarget(
            self.base_url,
            timeout_s=self.timeout_s,
            headers=self.headers,
            connections=max(1, self.connections // processes),
            credentials=mine,
            routes=self.routes,
        )


@dataclass(slots=True)
class Progress:
    """The live display's view of all workers (the same questions `Stats` answers)."""

    parts: dict[int, dict[str, float]] = field(default_factory=dict)

    def _sum(self, key: str) -> int:
        return int(sum(p[key] for p in self.parts.values()))

    @property
    def sent(self) -> int:
        return self._sum("sent")

    @property
    def errors(self) -> int:
        return self._sum("errors")

    @property
    def rejected(self) -> int:
        return self._sum("rejected")

    @property
    def in_flight(self) -> int:
        return self._sum("in_flight")

    def recent_rate(self, now: float, window_s: int = 5) -> float:
        return sum(p["rate"] for p in self.parts.values())

    def recent_p95(self, now: float, window_s: int = 5) -> float:
        """The slowest worker's p95: an upper bound of the merged one."""
        return max((p["p95"] for p in self.parts.values()), default=0.0)


def _snapshot(elapsed: float, stats: Stats) -> dict[str, float]:
    return {
        "sent": stats.sent,
        "errors": stats.errors,
        "rejected": stats.rejected,
        "in_flight": stats.in_flight,
        "rate": stats.recent_rate(elapsed),
        "p95": stats.recent_p95(elapsed),
    }


def _worker(
    index: int,
    processes: int,
    trace: str,
    spec: RestSpec,
    speed: float,
    max_in_flight: int,
    drain_timeout_s: float,
    inboxes: list[Any],
    outbox: Any,
    start: Any,
) -> None:
    """One worker process: set up, report ready, replay from the common start, report stats."""
    import uvloop

    for inbox in inboxes:  # a finished peer reads no more: never wait on its full pipe at exit
        inbox.cancel_join_thread()
    records = [r for r in read_trace(Path(trace)) if share(r.user, processes) == index]
    refs: dict[int, str] = {}

    def receive() -> None:
        while (item := inboxes[index].get()) is not None:
            refs[item[0]] = item[1]

    threading.Thread(target=receive, daemon=True).start()
    others = [q for i, q in enumerate(inboxes) if i != index]

    def created(seq: int, meme_id: str) -> None:
        for inbox in others:
            inbox.put((seq, meme_id))

    def tick(elapsed: float, stats: Stats, samples: Samples) -> None:
        outbox.put(("progress", index, _snapshot(elapsed, stats)))

    async def main() -> ReplayResult:
        from loadgen.replay import replay

        target = spec.target(index, processes)
        await target.setup()
        outbox.put(("ready", index, len(records)))
        start_at = await asyncio.to_thread(start.recv)
        return await replay(
            records,
            target,
            speed=speed,
            max_in_flight=max(1, max_in_flight // processes),
            drain_timeout_s=drain_timeout_s,
            tick=tick,
            start_at=start_at,
            refs=refs,
            on_created=created,
        )

    try:
        result = uvloop.run(main())
    except BaseException as exc:
        outbox.put(("failed", index, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        inboxes[index].put(None)
    outbox.put(("done", index, result.stats.to_wire(), result.scheduled, result.undrained))


async def replay_processes(
    trace: Path,
    spec: RestSpec,
    *,
    processes: int,
    speed: float = 1.0,
    max_in_flight: int = 20_000,
    drain_timeout_s: float = 60.0,
    observer: Observer | None = None,
    tick: Callable[[float, Progress, Samples], None] | None = None,
    header: TraceHeader | None = None,
) -> ReplayResult:
    """Runs `processes` workers over `trace` and merges what they measured."""
    if processes < 1:
        raise ValueError("processes must be at least 1")
    ctx = mp.get_context("spawn")
    inboxes = [ctx.Queue() for _ in range(processes)]
    outbox = ctx.Queue()
    pipes = [ctx.Pipe(duplex=False) for _ in range(processes)]
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                i,
                processes,
                str(trace),
                spec,
                speed,
                max_in_flight,
                drain_timeout_s,
                inboxes,
                outbox,
                pipes[i][0],
            ),
            name=f"loadgen-worker-{i}",
            daemon=True,
        )
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    progress = Progress()
    samples = Samples()
    try:
        ready: set[int] = set()
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        while len(ready) < processes:
            kind, index, value = await _next(outbox, procs, deadline)
            if kind == "ready":
                ready.add(index)
            elif kind == "failed":
                raise RuntimeError(f"loadgen worker {index} failed to start: {value}")
        start = time.monotonic() + START_MARGIN_S
        started_at = datetime.now(UTC).isoformat()
        for _, send in pipes:
            send.send(start)
        stop = asyncio.Event()
        background = []
        if observer is not None:
            background.append(asyncio.create_task(_observe(observer, samples, start, stop)))
        stats = Stats()
        scheduled = undrained = 0
        done: set[int] = set()
        last_tick = 0.0
        while len(done) < processes:
            try:
                kind, index, *rest = await _next(outbox, procs, None, poll_s=0.25)
            except TimeoutError:
                kind, index, rest = "idle", -1, []
            if kind == "progress":
                progress.parts[index] = rest[0]
            elif kind == "done":
                wire, sched, undrain = rest
                stats.merge_wire(wire)
                scheduled += sched
                undrained += undrain
                done.add(index)
            elif kind == "failed":
                raise RuntimeError(f"loadgen worker {index} failed: {rest[0]}")
            now = time.monotonic()
            if tick is not None and now - last_tick >= 1.0:
                last_tick = now
                tick(now - start, progress, samples)
        duration = time.monotonic() - start
        stop.set()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
    return ReplayResult(
        stats=stats,
        samples=samples,
        target=RestTarget.name if processes == 1 else f"{RestTarget.name} x{processes} processes",
        speed=speed,
        started_at=started_at,
        duration_s=duration,
        scheduled=scheduled,
        undrained=undrained,
        header=header,
    )


async def _next(
    outbox: Any, procs: list[Any], deadline: float | None, poll_s: float = 0.5
) -> tuple[Any, ...]:
    """The next worker message; raises when a worker died silently or `deadline` passed."""
    while True:
        with contextlib.suppress(queue.Empty):
            item: tuple[Any, ...] = await asyncio.to_thread(outbox.get, True, poll_s)
            return item
        dead = [p.name for p in procs if p.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"loadgen worker(s) died: {', '.join(dead)}")
        if deadline is None:
            raise TimeoutError
        if time.monotonic() > deadline:
            raise TimeoutError("loadgen workers did not get ready in time")
