"""The inference role end to end over the real NATS: the API's client (api/inference.py), the
worker (streams/inference.py) and their contract (domain/ai/contract.py).

The workers here run in the test's event loop (the same code `python -m streams worker --role
inference` runs), each test on subjects of its own, so the counters and batchers they expose
can be read directly: a request past its deadline must be dropped without running.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
import pytest

from api.inference import InferenceClient
from domain.ai import contract
from domain.ai.contract import CaptionJob, Job, Reply, SuggestJob
from domain.ai.manager import HEURISTIC
from domain.ai.registry import Task
from domain.ai.service import AIService
from domain.ai.suggest import TemplateSuggester
from domain.ai.types import Decision
from domain.metrics import INFERENCE_CLIENT, INFERENCE_EXPIRED
from domain.settings import Settings
from domain.templates import TemplateCatalog
from streams.inference import InferenceWorker
from tests.ai_fixtures import TinyModels

pytestmark = pytest.mark.services
CATALOG = TemplateCatalog.default()


def _settings(base: Settings, **overrides: object) -> Settings:
    subject = f"memestream-test-{uuid.uuid4().hex[:8]}.inference"
    return base.model_copy(update={"inference_subject": subject, **overrides})


def _tiny(base: Settings, models: TinyModels, **overrides: object) -> Settings:
    dirs = {
        "caption:small": models.gpt2,
        "suggest:small": models.bert,
        "sentiment:small": models.bert,
        "moderation_text:small": models.bert,
    }
    values: dict[str, object] = {
        "ai_model_size": "small",
        "ai_model_dirs": dirs,
        "ai_timeout_s": 30.0,
        "ai_caption_timeout_s": 30.0,
        "ai_caption_tokens_per_box": 6,
        "ai_torch_threads": 1,
        "inference_deadline_s": 30.0,
        "inference_caption_deadline_s": 30.0,
    }
    return _settings(base, **(values | overrides))


def _count(metric: object, **labels: str) -> float:
    return float(metric.labels(**labels)._value.get())  # type: ignore[attr-defined]


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[InferenceWorker]:
    """A worker subscribed in the queue group, as streams/inference.py `run` makes it."""
    ai = AIService(settings, CATALOG)
    worker = InferenceWorker(settings, ai)
    nc = await nats.connect(settings.nats_url)
    try:
        await worker.subscribe(nc)
        await nc.flush()  # the subscription reached the server before any request
        yield worker
    finally:
        await worker.stop(grace_s=5)
        await nc.close()
        await ai.aclose()


@asynccontextmanager
async def client_of(settings: Settings) -> AsyncIterator[InferenceClient]:
    client = InferenceClient(settings)
    await client.start()
    try:
        async with asyncio.timeout(10):
            await client.wait_connected()
        yield client
    finally:
        await client.stop()


def test_messages_round_trip_and_bad_ones_are_refused() -> None:
    job = CaptionJob(123.5, "coffee", "drake", "Drake", "", 2)
    assert contract.decode(CaptionJob, contract.encode(job)) == job
    with pytest.raises(contract.BadMessage):
        contract.decode(CaptionJob, b'{"deadline": 1, "topic": "x"}')
    with pytest.raises(contract.BadMessage):
        contract.decode(SuggestJob, b"not json")
    with pytest.raises(contract.BadMessage):
        contract.decode(Reply, contract.error("no such job"))
    with pytest.raises(contract.BadMessage):
        contract.caption_from(["one"], 2)  # a caption must fill every box


async def test_caption_suggest_moderation_and_sentiment_through_a_worker(
    stack_settings: Settings, tiny_models: TinyModels
) -> None:
    settings = _tiny(stack_settings, tiny_models)
    async with serving(settings) as worker, client_of(settings) as client:
        drake = CATALOG.get("drake")
        caption = await client.caption("unit tests", drake)
        assert len(caption.value.texts) == len(drake.boxes)
        assert all(t.strip() for t in caption.value.texts)
        assert caption.source in {"gpt2-tiny", HEURISTIC}
        ranked, source = await client.suggest(
            "two buttons choice", 3, TemplateSuggester(None, CATALOG)
        )
        assert source == "bert-tiny"  # the worker's model ranked them
        assert len(ranked) == 3 and all(s.template_id in CATALOG for s in ranked)
        assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)
        verdict = await client.moderate_text(["when the code finally compiles"])
        assert verdict.source == "bert-tiny" and verdict.decision in set(Decision)
        blocked = await client.moderate_text(["I will kill you"])
        assert blocked.decision is not Decision.OK and blocked.source == "blocklist"
        sentiment = await client.sentiment(["i love memes"])
        assert sentiment.source == "bert-tiny"
        assert sentiment.value.label in {"negative", "neutral", "positive"}
        for job in ("caption", "suggest", "sentiment"):
            assert worker.outcomes[(job, "answered")] >= 1, job
        assert worker.outcomes[("moderate_text", "answered")] == 2


async def test_a_request_past_its_deadline_is_dropped_unrun(stack_settings: Settings) -> None:
    settings = _settings(stack_settings, ai_enabled=False)
    before = _count(INFERENCE_EXPIRED, task="caption", stage="received")
    async with serving(settings) as worker:
        nc = await nats.connect(settings.nats_url)
        try:
            late = CaptionJob(time.time() - 1, "coffee", "drake", "Drake", "", 2)
            with pytest.raises(nats.errors.TimeoutError):  # dropped: no reply at all
                await nc.request(
                    contract.subject(settings.inference_subject, Job.CAPTION),
                    contract.encode(late),
                    timeout=0.5,
                )
            # The same request in time is answered, by the same worker.
            fresh = CaptionJob(time.time() + 5, "coffee", "drake", "Drake", "", 2)
            reply = await nc.request(
                contract.subject(settings.inference_subject, Job.CAPTION),
                contract.encode(fresh),
                timeout=5,
            )
        finally:
            await nc.close()
    assert len(contract.decode(Reply, reply.data).value) == 2
    assert worker.outcomes[("caption", "expired")] == 1
    assert worker.outcomes[("caption", "answered")] == 1
    assert _count(INFERENCE_EXPIRED, task="caption", stage="received") == before + 1


async def test_a_request_that_expires_waiting_for_a_slot_is_dropped(
    stack_settings: Settings,
) -> None:
    settings = _settings(
        stack_settings, ai_enabled=False, inference_caption_deadline_s=0.3, inference_concurrency=1
    )
    before = _count(INFERENCE_EXPIRED, task="caption", stage="queued")
    async with serving(settings) as worker, client_of(settings) as client:
        async with worker.slots:  # the worker is busy: the request waits for a slot
            started = time.monotonic()
            answer = await client.caption("coffee", CATALOG.get("drake"))
            waited = time.monotonic() - started
        await asyncio.sleep(0.2)  # the worker takes the slot, finds the deadline passed
    assert answer.source == HEURISTIC and answer.fallback  # the API's own fallback
    assert 0.25 <= waited < 1.5
    assert worker.outcomes[("caption", "expired")] == 1
    assert worker.outcomes[("caption", "answered")] == 0
    assert _count(INFERENCE_EXPIRED, task="caption", stage="queued") == before + 1


async def test_a_request_that_expires_in_the_batcher_never_reaches_the_model(
    stack_settings: Settings, tiny_models: TinyModels
) -> None:
    """The batcher waits up to AI_MAX_WAIT_MS for company; a deadline inside that wait drops
    the item, and no batch runs for it."""
    settings = _tiny(stack_settings, tiny_models, ai_max_wait_ms=1000, inference_deadline_s=0.3)
    async with serving(settings) as worker, client_of(settings) as client:
        await worker.ai.manager.warm_up([worker.ai.suggester.runner])
        (slot,) = worker.ai.manager._loaded.values()
        batcher = slot.batchers[Task.SUGGEST]
        items = batcher.items
        ranked, source = await client.suggest("coffee", 3, TemplateSuggester(None, CATALOG))
        await asyncio.sleep(1.2)  # past the batcher's wait: a batch would have run by now
    assert source == HEURISTIC and len(ranked) == 3
    assert batcher.items == items, "the expired request went through the model"
    assert worker.outcomes[("suggest", "expired")] == 1


async def test_replicas_in_the_queue_group_share_the_requests(stack_settings: Settings) -> None:
    settings = _settings(stack_settings, ai_enabled=False)
    fallback = TemplateSuggester(None, CATALOG)
    async with serving(settings) as one, serving(settings) as two, client_of(settings) as client:
        answers = await asyncio.gather(*(client.suggest("cat", 2, fallback) for _ in range(40)))
    assert all(len(ranked) == 2 for ranked, _ in answers)
    served = [w.outcomes[("suggest", "answered")] for w in (one, two)]
    assert sum(served) == 40, "each request reaches exactly one replica"
    assert min(served) > 0, served


async def test_no_worker_listening_answers_the_heuristic_at_once(
    stack_settings: Settings,
) -> None:
    settings = _settings(stack_settings, inference_caption_deadline_s=10.0)
    before = _count(INFERENCE_CLIENT, task="caption", outcome="no_worker")
    async with client_of(settings) as client:
        assert client.connected
        started = time.monotonic()
        answer = await client.caption("coffee", CATALOG.get("expanding-brain"))
        elapsed = time.monotonic() - started
    assert answer.source == HEURISTIC and answer.fallback
    assert len(answer.value.texts) == len(CATALOG.get("expanding-brain").boxes)
    assert elapsed < 1.0, "NATS answers 'no responders' at once; the deadline is 10 s"
    assert _count(INFERENCE_CLIENT, task="caption", outcome="no_worker") == before + 1


async def test_nats_down_answers_the_heuristic_not_an_error(stack_settings: Settings) -> None:
    settings = _settings(stack_settings, nats_url="nats://127.0.0.1:1")
    before = _count(INFERENCE_CLIENT, task="suggest", outcome="unavailable")
    client = InferenceClient(settings)
    await client.start()
    try:
        started = time.monotonic()
        ranked, source = await client.suggest("two buttons", 3, TemplateSuggester(None, CATALOG))
        elapsed = time.monotonic() - started
        sentiment = await client.sentiment(["i love this"])
    finally:
        await client.stop()
    assert source == HEURISTIC and ranked[0].template_id == "two-buttons"
    assert sentiment.source == HEURISTIC and sentiment.value.label == "positive"
    assert elapsed < 0.5
    assert _count(INFERENCE_CLIENT, task="suggest", outcome="unavailable") == before + 1
