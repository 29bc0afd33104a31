"""Micro-batching: concurrent callers' items go through a model together.

A model's fixed cost per call (Python overhead, small matrix products that leave cores idle)
dominates at batch size one, so every agent and request submits single items here and a
collector task groups them: it takes the first waiting item, then waits at most `max_wait_s`
for more, up to `max_batch`, and runs the batch in the model's executor. While a batch runs,
new items queue up and form the next batch, so under load batches fill without any wait.

`memestream_queue_depth{queue="inference"}` counts the items waiting in every batcher of the
process (KEDA scales the render workers on it): +1 when an item is queued, -1 when a collector
takes it or `close` drops it, so batchers of several models add up instead of overwriting.

A caller that gives up (its timeout cancels the future) is dropped from the batch before it
runs. `fn` returns one result per item, in order; an item's result may be an exception, which
is raised to that caller only. If `fn` raises, every caller of that batch gets the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

from domain.metrics import QUEUE_DEPTH

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741

BatchFn = Callable[[Sequence[I]], Sequence[O | BaseException]]
BatchObserver = Callable[[int, float], None]
#: Created at import, so the series reads 0 (not absent) in every process that can infer.
WAITING = QUEUE_DEPTH.labels(queue="inference")


class BatcherClosed(RuntimeError):
    """The batcher was closed (its model was evicted or the process is stopping)."""


class MicroBatcher(Generic[I, O]):
    def __init__(
        self,
        fn: BatchFn[I, O],
        *,
        max_batch: int,
        max_wait_s: float,
        executor: Executor | None = None,
        observe: BatchObserver | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_s)
        self.executor = executor
        self.observe = observe
        self._queue: asyncio.Queue[tuple[I, asyncio.Future[O]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0
        self.items = 0

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def submit(self, item: I) -> O:
        """The item's result, computed in a batch with whatever else is waiting."""
        if self._closed:
            raise BatcherClosed("the batcher is closed")
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._collect(), name="micro-batcher")
        future: asyncio.Future[O] = loop.create_future()
        self._queue.put_nowait((item, future))
        WAITING.inc()
        return await future

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            WAITING.dec()
            if not future.done():
                future.set_exception(BatcherClosed("the batcher is closed"))

    async def _collect(self) -> None:
        while True:
            batch = [await self._queue.get()]
            WAITING.dec()
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    WAITING.dec()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
                WAITING.dec()
            live = [(item, future) for item, future in batch if not future.done()]
            if live:
                await self._run(live)

    async def _run(self, batch: list[tuple[I, asyncio.Future[O]]]) -> None:
        items = [item for item, _ in batch]
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self.executor, self.fn, items)
            if len(results) != len(items):
                raise RuntimeError(f"batch of {len(items)} gave {len(results)} results")
        except asyncio.CancelledError:
            for _, future in batch:
                if not future.done():
                    future.set_exception(BatcherClosed("the batcher is closed"))
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self.batches += 1
            self.items += len(items)
        if self.observe is not None:
            self.observe(len(items), time.perf_counter() - started)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
