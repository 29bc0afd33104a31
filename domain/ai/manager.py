"""The model manager: lazy loading, warm-up, an LRU within a memory budget, micro-batching,
timeouts and a fallback chain per task.

A task (captions.py, sentiment.py, ...) is a `TaskRunner`: a batch function over a loaded
model and a rule-based heuristic for one item. `infer(runner, item)` walks the chain that
`AI_MODEL_SIZE` gives for the task (the configured size, then each smaller model, then the
heuristic): each model gets `timeout_s` for loading plus inference, and any failure
(timeout, load error, over budget, inference error) moves on to the next, counted in
`memestream_inference_failures_total` and, for the answer actually given,
`memestream_inference_fallbacks_total{fallback="smaller_model"|"heuristic"}`.

Loading runs in a loader thread and is shared by concurrent callers; a caller that times out
does not cancel it, so the next request finds the model ready. A model that failed to load
is not retried for `retry_after_s`. Each loaded model has one inference thread (its batches
run one after another, in order) and one micro-batcher per task. Loaded models form an LRU:
loading one that does not fit in `AI_MEMORY_BUDGET_MB` first evicts the least recently used.

A runner's `prepare` (decoding and resizing an image) runs on a shared pool of preparation
threads before the item joins a batch, so that serial inference thread runs only the model
and the next batch is prepared while the current one runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from domain.ai.backends import LoadedModel, ModelUnavailable, load_model
from domain.ai.batching import MicroBatcher
from domain.ai.registry import ModelRegistry, ModelSpec, Task, packaged_registry
from domain.metrics import (
    AI_MODEL_EVICTIONS,
    AI_MODEL_LOAD_DURATION,
    AI_MODELS_LOADED_BYTES,
    INFERENCE_BATCH_SIZE,
    INFERENCE_DURATION,
    INFERENCE_FAILURES,
    INFERENCE_FALLBACKS,
)
from domain.settings import ModelSize, Settings

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741

HEURISTIC = "heuristic"


@dataclass(frozen=True)
class TaskRunner(Generic[I, O]):
    """How one task uses a model (`run`, on a batch) and answers without one (`heuristic`).

    `sample` is an input for warm-up; `timeout_s`, when set, overrides the manager's default
    (captions generate token by token and need longer than a classification). `prepare`, when
    set, turns one item into the model's input (`prepare(model, item)`, thread-safe) off the
    model's inference thread; `run` then gets prepared inputs instead of items.
    """

    task: Task
    run: Callable[[Any, Sequence[Any]], Sequence[O | BaseException]]
    heuristic: Callable[[I], O]
    sample: I
    timeout_s: float | None = None
    prepare: Callable[[Any, I], Any] | None = None


@dataclass(frozen=True, slots=True)
class Answer(Generic[O]):
    value: O
    source: str  # the model's name, or "heuristic"
    size: str | None  # the model's size; None for the heuristic
    fallback: bool  # True when a model earlier in the chain did not answer

    @property
    def heuristic(self) -> bool:
        return self.source == HEURISTIC


class OverBudget(RuntimeError):
    """The model alone is larger than the memory budget."""


@dataclass
class _Slot:
    model: LoadedModel
    executor: ThreadPoolExecutor
    batchers: dict[Task, MicroBatcher[Any, Any]] = field(default_factory=dict)


class ModelManager:
    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry | None = None,
        *,
        loader: Callable[[ModelSpec, int], LoadedModel] = load_model,
        retry_after_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else _registry_or_empty(settings)
        self.size = ModelSize(settings.ai_model_size)
        self.enabled = settings.ai_enabled
        self.budget_bytes = settings.ai_memory_budget_mb * 1024 * 1024
        self.timeout_s = settings.ai_timeout_s
        self.max_batch = settings.ai_max_batch
        self.max_wait_s = settings.ai_max_wait_ms / 1000.0
        self.threads = settings.ai_torch_threads
        self.retry_after_s = retry_after_s
        self._loader = loader
        self._loaded: OrderedDict[str, _Slot] = OrderedDict()
        self._loading: dict[str, asyncio.Future[_Slot]] = {}
        self._failed: dict[str, tuple[float, str, str]] = {}  # key -> (when, reason, message)
        self._load_executor = ThreadPoolExecutor(1, thread_name_prefix="ai-load")
        self._prepare_executor = ThreadPoolExecutor(
            max(1, self.threads), thread_name_prefix="ai-prepare"
        )

    # --- public -----------------------------------------------------------------------------
    def chain(self, task: Task) -> list[ModelSpec]:
        return self.registry.chain(task, self.size) if self.enabled else []

    async def infer(
        self, runner: TaskRunner[I, O], item: I, *, timeout_s: float | None = None
    ) -> Answer[O]:
        """The first answer along the task's chain; the heuristic always answers."""
        timeout = timeout_s or runner.timeout_s or self.timeout_s
        failed = False
        for spec in self.chain(runner.task):
            try:
                value = await asyncio.wait_for(self._attempt(runner, spec, item), timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = _reason(exc)
                INFERENCE_FAILURES.labels(
                    task=runner.task.value, model_size=spec.size.value, reason=reason
                ).inc()
                log.debug("%s on %s failed (%s): %s", runner.task, spec.name, reason, exc)
                failed = True
                continue
            if failed:
                INFERENCE_FALLBACKS.labels(task=runner.task.value, fallback="smaller_model").inc()
            return Answer(value, spec.name, spec.size.value, failed)
        INFERENCE_FALLBACKS.labels(task=runner.task.value, fallback=HEURISTIC).inc()
        return Answer(runner.heuristic(item), HEURISTIC, None, True)

    async def infer_many(
        self, runner: TaskRunner[I, O], items: Sequence[I], *, timeout_s: float | None = None
    ) -> list[Answer[O]]:
        """Several items at once: they share batches with each other and with other callers."""
        return list(
            await asyncio.gather(*(self.infer(runner, i, timeout_s=timeout_s) for i in items))
        )

    async def infer_alone(
        self, runner: TaskRunner[I, O], item: I, *, timeout_s: float | None = None
    ) -> O:
        """`item` through the task's first model as a batch of one, on the model's inference
        thread but without the micro-batcher (no AI_MAX_WAIT_MS wait) and without fallbacks:
        the one-at-a-time baseline that benchmarks/ai.py measures batching against."""
        chain = self.chain(runner.task)
        if not chain:
            raise ModelUnavailable(f"no model for {runner.task.value}")

        async def attempt() -> O:
            slot = await self._slot(chain[0])
            value = await self._prepare(runner, slot, item)
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(slot.executor, runner.run, slot.model, [value])
            result = results[0]
            if isinstance(result, BaseException):
                raise result
            return result

        return await asyncio.wait_for(attempt(), timeout_s or runner.timeout_s or self.timeout_s)

    async def warm_up(
        self, runners: Sequence[TaskRunner[Any, Any]], *, timeout_s: float = 120.0
    ) -> dict[str, str]:
        """Loads each task's first model and runs its sample once; returns task -> source."""
        sources: dict[str, str] = {}
        for runner in runners:
            answer = await self.infer(runner, runner.sample, timeout_s=timeout_s)
            sources[runner.task.value] = answer.source
        log.info("AI warm-up: %s", sources)
        return sources

    def loaded(self) -> list[str]:
        """Names of the loaded models, least recently used first."""
        return [slot.model.spec.name for slot in self._loaded.values()]

    @property
    def loaded_bytes(self) -> int:
        return sum(slot.model.memory_bytes for slot in self._loaded.values())

    def failures(self) -> dict[str, str]:
        return {key: f"{reason}: {message}" for key, (_, reason, message) in self._failed.items()}

    async def aclose(self) -> None:
        for key in list(self._loaded):
            await self._evict(key, count=False)
        self._load_executor.shutdown(wait=False, cancel_futures=True)
        self._prepare_executor.shutdown(wait=False, cancel_futures=True)

    # --- internals ------------------------------------------------------------------------
    async def _attempt(self, runner: TaskRunner[I, O], spec: ModelSpec, item: I) -> O:
        slot = await self._slot(spec)
        value = await self._prepare(runner, slot, item)
        batcher = slot.batchers.get(runner.task)
        if batcher is None:
            batcher = self._batcher(runner, spec, slot)
            slot.batchers[runner.task] = batcher
        return await batcher.submit(value)

    async def _prepare(self, runner: TaskRunner[I, O], slot: _Slot, item: I) -> Any:
        """The runner's input for `item`, prepared on the preparation threads (if it has a
        `prepare`), so the model's single inference thread runs only the model."""
        if runner.prepare is None:
            return item
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._prepare_executor, runner.prepare, slot.model, item)

    def _batcher(
        self, runner: TaskRunner[I, O], spec: ModelSpec, slot: _Slot
    ) -> MicroBatcher[Any, O]:
        task, size = runner.task.value, spec.size.value
        model = slot.model

        def observe(n: int, seconds: float) -> None:
            INFERENCE_BATCH_SIZE.labels(task=task).observe(n)
            INFERENCE_DURATION.labels(task=task, model_size=size).observe(seconds)

        def run(items: Sequence[Any]) -> Sequence[O | BaseException]:
            return runner.run(model, items)

        return MicroBatcher(
            run,
            max_batch=self.max_batch,
            max_wait_s=self.max_wait_s,
            executor=slot.executor,
            observe=observe,
        )

    async def _slot(self, spec: ModelSpec) -> _Slot:
        key = spec.key
        slot = self._loaded.get(key)
        if slot is not None:
            self._loaded.move_to_end(key)
            return slot
        failed = self._failed.get(key)
        if failed is not None and time.monotonic() - failed[0] < self.retry_after_s:
            raise _RememberedFailure(failed[1], failed[2])
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(spec))
            self._loading[key] = loading
            loading.add_done_callback(lambda done: self._loaded_or_failed(key, done))
        # A caller's timeout must not cancel a load that others (and later calls) wait for.
        return await asyncio.shield(loading)

    def _loaded_or_failed(self, key: str, done: asyncio.Future[_Slot]) -> None:
        self._loading.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: a load every caller gave up on is not an error log

    async def _load(self, spec: ModelSpec) -> _Slot:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            model = await loop.run_in_executor(
                self._load_executor, self._loader, spec, self.threads
            )
            if model.memory_bytes > self.budget_bytes:
                raise OverBudget(
                    f"{spec.name} needs ~{model.memory_bytes >> 20} MiB; "
                    f"the budget is {self.budget_bytes >> 20} MiB"
                )
        except Exception as exc:
            reason = _reason(exc, loading=True)
            self._failed[spec.key] = (time.monotonic(), reason, str(exc))
            log.warning("model %s (%s) not loaded: %s", spec.name, spec.path, exc)
            raise _RememberedFailure(reason, str(exc)) from exc
        AI_MODEL_LOAD_DURATION.labels(model=spec.name).observe(time.perf_counter() - started)
        while self._loaded and self.loaded_bytes + model.memory_bytes > self.budget_bytes:
            await self._evict(next(iter(self._loaded)))
        self._failed.pop(spec.key, None)
        slot = _Slot(model, ThreadPoolExecutor(1, thread_name_prefix=f"ai-{spec.name}"))
        self._loaded[spec.key] = slot
        AI_MODELS_LOADED_BYTES.labels(model=spec.name).inc(model.memory_bytes)
        log.info("loaded %s (%s, ~%d MiB)", spec.name, spec.size, model.memory_bytes >> 20)
        return slot

    async def _evict(self, key: str, *, count: bool = True) -> None:
        slot = self._loaded.pop(key, None)
        if slot is None:
            return
        name = slot.model.spec.name
        for batcher in slot.batchers.values():
            await batcher.close()
        slot.executor.shutdown(wait=False)
        AI_MODELS_LOADED_BYTES.labels(model=name).dec(slot.model.memory_bytes)
        if count:
            AI_MODEL_EVICTIONS.labels(model=name).inc()
            log.info("evicted %s to stay within the AI memory budget", name)


class _RememberedFailure(RuntimeError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _reason(exc: BaseException, *, loading: bool = False) -> str:
    if isinstance(exc, _RememberedFailure):
        return exc.reason
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OverBudget):
        return "over_budget"
    if isinstance(exc, ModelUnavailable | ImportError):
        return "unavailable"
    return "load_error" if loading else "error"


def _registry_or_empty(settings: Settings) -> ModelRegistry:
    try:
        return packaged_registry(settings)
    except ValueError as exc:  # a bad AI_MODEL_DIRS key: say so, answer with heuristics
        log.error("%s", exc)
        return ModelRegistry({})
