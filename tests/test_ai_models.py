"""The manager with tiny random models (built in `tests/ai_fixtures.py`), loaded through the
same loaders as the real ones: types, label sets, batching, timeouts and every fallback.
Model quality is not tested here: the weights are random.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from domain.ai.captions import Captioner, CaptionRequest, caption_runner
from domain.ai.manager import HEURISTIC, ModelManager
from domain.ai.moderation import IMAGE, Moderator
from domain.ai.registry import ModelKind, ModelRegistry, ModelSpec, Task
from domain.ai.sentiment import SENTIMENT, SentimentAnalyzer
from domain.ai.suggest import TemplateSuggester
from domain.ai.types import SENTIMENT_LABELS, Caption, Decision, Sentiment
from domain.metrics import INFERENCE_FAILURES, INFERENCE_FALLBACKS
from domain.settings import ModelSize, Settings
from domain.templates import TemplateCatalog
from tests.ai_fixtures import TinyModels

SMALL, MEDIUM, LARGE = ModelSize.SMALL, ModelSize.MEDIUM, ModelSize.LARGE


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "ai_model_size": "large",
        "ai_timeout_s": 30.0,
        "ai_caption_timeout_s": 30.0,
        "ai_caption_tokens_per_box": 6,
        "ai_torch_threads": 1,
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


def _spec(name: str, kind: ModelKind, path: Path, size: ModelSize) -> ModelSpec:
    return ModelSpec(name, kind, path, size)


def _registry(m: TinyModels, *, broken_medium: bool = False) -> ModelRegistry:
    specs: dict[tuple[Task, ModelSize], ModelSpec] = {}
    emb, lm, img = ModelKind.EMBEDDER, ModelKind.CAUSAL_LM, ModelKind.IMAGE_CLASSIFIER
    for task in (Task.SUGGEST, Task.SENTIMENT, Task.MODERATION_TEXT):
        specs[(task, SMALL)] = _spec("bert-tiny", emb, m.bert, SMALL)
        specs[(task, MEDIUM)] = _spec("distilbert-tiny", emb, m.distilbert, MEDIUM)
    specs[(Task.CAPTION, SMALL)] = _spec("gpt2-tiny", lm, m.gpt2, SMALL)
    specs[(Task.MODERATION_IMAGE, SMALL)] = _spec("vit-tiny", img, m.vit, SMALL)
    if broken_medium:
        for task, kind in ((Task.CAPTION, lm), (Task.MODERATION_IMAGE, img)):
            specs[(task, MEDIUM)] = _spec("broken", kind, m.broken, MEDIUM)
    return ModelRegistry(specs)


def _png(color: tuple[int, int, int] = (30, 120, 200), size: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _count(metric: object, **labels: str) -> float:
    return float(metric.labels(**labels)._value.get())  # type: ignore[attr-defined]


@pytest.fixture
async def manager(tiny_models: TinyModels):  # type: ignore[no-untyped-def]
    mgr = ModelManager(_settings(), _registry(tiny_models))
    yield mgr
    await mgr.aclose()


async def test_sentiment_labels_and_scores(manager: ModelManager) -> None:
    analyzer = SentimentAnalyzer(manager)
    answers = await asyncio.gather(
        *(analyzer.analyze(t) for t in ("i love memes", "everything is broken", "", "a table"))
    )
    for answer in answers:
        assert isinstance(answer.value, Sentiment)
        assert answer.value.label in SENTIMENT_LABELS
        assert 0.0 <= answer.value.score <= 1.0
    # AI_MODEL_SIZE=large with no large embedder: medium (DistilBERT) answers, no fallback.
    assert {a.source for a in answers} == {"distilbert-tiny"}
    assert not any(a.fallback for a in answers)
    assert answers[2].value == Sentiment("neutral", 1.0)  # an empty caption is neutral


async def test_suggestions_are_ranked_catalog_templates(manager: ModelManager) -> None:
    catalog = TemplateCatalog.default()
    suggester = TemplateSuggester(manager, catalog)
    suggestions, source = await suggester.from_text("two buttons choice", limit=3)
    assert source == "distilbert-tiny"
    assert len(suggestions) == 3
    assert all(s.template_id in catalog for s in suggestions)
    scores = [s.score for s in suggestions]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


async def test_template_from_image_finds_the_source_template(manager: ModelManager) -> None:
    catalog = TemplateCatalog.default()
    suggester = TemplateSuggester(manager, catalog)
    upload = catalog.get("drake").image().resize((200, 200))
    ranked = await suggester.from_image(upload, limit=3)
    assert ranked[0].template_id == "drake"
    assert ranked[0].score > ranked[1].score


async def test_captions_have_one_text_per_box(manager: ModelManager) -> None:
    catalog = TemplateCatalog.default()
    captioner = Captioner(manager)
    for template_id in ("drake", "expanding-brain"):
        template = catalog.get(template_id)
        answer = await captioner.suggest("unit tests", template)
        assert isinstance(answer.value, Caption)
        assert len(answer.value.texts) == len(template.boxes)
        assert all(isinstance(t, str) and t.strip() for t in answer.value.texts)
        assert answer.source in {"gpt2-tiny", HEURISTIC}


async def test_the_caption_model_itself_generates_parsable_text(
    manager: ModelManager, tiny_models: TinyModels
) -> None:
    from domain.ai.backends import CausalLM

    model = CausalLM(_spec("gpt2-tiny", ModelKind.CAUSAL_LM, tiny_models.gpt2, SMALL), 1)
    runner = caption_runner(_settings())
    requests = [CaptionRequest("bugs", "drake", "Drake", "", 2)] * 3
    outputs = model.generate([model.prompt("system", "user")] * 2, 8)
    assert len(outputs) == 2 and all(isinstance(o, str) for o in outputs)
    results = runner.run(model, requests)
    assert len(results) == 3
    assert all(isinstance(r, Caption | ValueError) for r in results)


async def test_fill_keeps_given_texts_and_fills_the_empty_ones(manager: ModelManager) -> None:
    template = TemplateCatalog.default().get("drake")
    filled, answer = await Captioner(manager).fill(template, ["", "Shipping memes"])
    assert filled[1] == "Shipping memes"
    assert filled[0].strip()
    assert answer is not None
    unchanged, none = await Captioner(manager).fill(template, ["a", "b"])
    assert unchanged == ["a", "b"] and none is None


async def test_image_and_text_moderation_verdicts(manager: ModelManager) -> None:
    moderator = Moderator(manager)
    verdict = await moderator.check_image(_png())
    assert verdict.decision in set(Decision)
    assert 0.0 <= verdict.score <= 1.0
    assert verdict.source == "vit-tiny"
    text = await moderator.check_text(["writing tests", "shipping memes"])
    assert text.source == "distilbert-tiny"
    assert text.decision is not Decision.REJECTED  # the zero-shot score alone never rejects
    blocked = await moderator.check_text(["go kill yourself"])
    assert blocked.decision is Decision.REJECTED
    assert blocked.reason == "text: self-harm incitement"


async def test_an_unreadable_image_is_flagged_not_dropped(manager: ModelManager) -> None:
    verdict = await Moderator(manager).check_image(b"not an image at all")
    assert verdict.decision is Decision.FLAGGED
    assert verdict.label == "unreadable"


async def test_concurrent_items_are_batched(manager: ModelManager) -> None:
    texts = [f"meme number {i}" for i in range(16)]
    await manager.infer(SENTIMENT, "warm")  # load first, so all 16 queue together
    slot = next(iter(manager._loaded.values()))
    before = slot.batchers[Task.SENTIMENT].batches
    answers = await manager.infer_many(SENTIMENT, texts)
    assert len(answers) == 16
    batches = slot.batchers[Task.SENTIMENT].batches - before
    assert 1 <= batches <= 4, f"16 concurrent items took {batches} batches"


async def test_failed_larger_model_falls_back_to_the_smaller(tiny_models: TinyModels) -> None:
    mgr = ModelManager(_settings(), _registry(tiny_models, broken_medium=True))
    before = _count(INFERENCE_FALLBACKS, task="moderation_image", fallback="smaller_model")
    failures = _count(
        INFERENCE_FAILURES, task="moderation_image", model_size="medium", reason="load_error"
    )
    try:
        answer = await mgr.infer(IMAGE, _png())
        assert answer.source == "vit-tiny"
        assert answer.size == "small"
        assert answer.fallback
        assert isinstance(answer.value, float)
        after = _count(INFERENCE_FALLBACKS, task="moderation_image", fallback="smaller_model")
        assert after == before + 1
        assert (
            _count(
                INFERENCE_FAILURES,
                task="moderation_image",
                model_size="medium",
                reason="load_error",
            )
            == failures + 1
        )
        # The broken model is remembered: the next call does not try to load it again.
        assert "broken" not in mgr.loaded()
        again = await mgr.infer(IMAGE, _png())
        assert again.source == "vit-tiny"
    finally:
        await mgr.aclose()


async def test_every_model_failing_ends_in_the_heuristic(tiny_models: TinyModels) -> None:
    broken = ModelRegistry(
        {
            (Task.SENTIMENT, SMALL): _spec("broken", ModelKind.EMBEDDER, tiny_models.broken, SMALL),
        }
    )
    mgr = ModelManager(_settings(), broken)
    before = _count(INFERENCE_FALLBACKS, task="sentiment", fallback=HEURISTIC)
    try:
        answer = await mgr.infer(SENTIMENT, "I love this")
        assert answer.source == HEURISTIC and answer.size is None and answer.fallback
        assert answer.value.label == "positive"
        assert _count(INFERENCE_FALLBACKS, task="sentiment", fallback=HEURISTIC) == before + 1
    finally:
        await mgr.aclose()


async def test_a_timeout_falls_back_and_the_load_finishes_for_the_next_call(
    tiny_models: TinyModels,
) -> None:
    mgr = ModelManager(_settings(ai_model_size="small"), _registry(tiny_models))
    before = _count(INFERENCE_FAILURES, task="sentiment", model_size="small", reason="timeout")
    try:
        quick = await mgr.infer(SENTIMENT, "I love this", timeout_s=0.001)
        assert quick.source == HEURISTIC
        assert (
            _count(INFERENCE_FAILURES, task="sentiment", model_size="small", reason="timeout")
            == before + 1
        )
        patient = await mgr.infer(SENTIMENT, "I love this", timeout_s=60)
        assert patient.source == "bert-tiny"
    finally:
        await mgr.aclose()


async def test_lru_evicts_the_least_recently_used_model_to_fit_the_budget(
    tiny_models: TinyModels,
) -> None:
    mgr = ModelManager(_settings(ai_model_size="small"), _registry(tiny_models))
    try:
        await mgr.infer(SENTIMENT, "first")  # bert-tiny
        await mgr.infer(IMAGE, _png())  # vit-tiny
        assert mgr.loaded() == ["bert-tiny", "vit-tiny"]
        from domain.ai.backends import CausalLM

        sizes = {s.model.spec.name: s.model.memory_bytes for s in mgr._loaded.values()}
        gpt2 = CausalLM(_spec("gpt2-tiny", ModelKind.CAUSAL_LM, tiny_models.gpt2, SMALL), 1)
        # Room for GPT-2 and BERT, not for the ViT as well.
        mgr.budget_bytes = gpt2.memory_bytes + sizes["bert-tiny"]
        await mgr.infer(SENTIMENT, "again")  # bert-tiny becomes the most recently used
        request = CaptionRequest("x", "d", "D", "", 2)
        caption = await mgr.infer(caption_runner(mgr.settings), request)
        assert caption.source in {"gpt2-tiny", HEURISTIC}
        assert mgr.loaded() == ["bert-tiny", "gpt2-tiny"]  # the ViT was evicted
        assert mgr.loaded_bytes <= mgr.budget_bytes
        evicted = await mgr.infer(IMAGE, _png())  # reloads the ViT, evicting BERT now
        assert evicted.source == "vit-tiny"
        assert mgr.loaded() == ["gpt2-tiny", "vit-tiny"]
    finally:
        await mgr.aclose()


async def test_a_model_larger_than_the_budget_is_refused(tiny_models: TinyModels) -> None:
    mgr = ModelManager(_settings(ai_model_size="small"), _registry(tiny_models))
    mgr.budget_bytes = 1024
    before = _count(INFERENCE_FAILURES, task="sentiment", model_size="small", reason="over_budget")
    try:
        answer = await mgr.infer(SENTIMENT, "I love this")
        assert answer.source == HEURISTIC
        after = _count(
            INFERENCE_FAILURES, task="sentiment", model_size="small", reason="over_budget"
        )
        assert after == before + 1
        assert mgr.loaded() == []
    finally:
        await mgr.aclose()


async def test_warm_up_loads_each_task_and_reports_its_source(tiny_models: TinyModels) -> None:
    from domain.ai.moderation import TEXT

    mgr = ModelManager(_settings(ai_model_size="small"), _registry(tiny_models))
    try:
        sources = await mgr.warm_up([SENTIMENT, TEXT, IMAGE])
        assert sources == {
            "sentiment": "bert-tiny",
            "moderation_text": "bert-tiny",
            "moderation_image": "vit-tiny",
        }
        assert sorted(mgr.loaded()) == ["bert-tiny", "vit-tiny"]  # shared by three tasks
    finally:
        await mgr.aclose()


async def test_ai_disabled_answers_with_heuristics_only(tiny_models: TinyModels) -> None:
    mgr = ModelManager(_settings(ai_enabled=False), _registry(tiny_models))
    answer = await mgr.infer(SENTIMENT, "I hate mondays")
    assert answer.source == HEURISTIC
    assert answer.value.label == "negative"
    assert mgr.loaded() == []
    await mgr.aclose()


async def test_stream_step_scores_a_catalogue_template_once(tiny_models: TinyModels) -> None:
    from domain.ai.service import AIService
    from domain.events import MemeRequested
    from domain.rendering import RenderOptions, render_meme
    from streams.moderation import ModerationStep

    catalog = TemplateCatalog.default()
    ai = AIService(_settings(ai_model_size="small"), catalog, _registry(tiny_models))
    cached = ModerationStep(ai, catalog)
    every = ModerationStep(ai, catalog, every_meme=True)
    rendered = render_meme("drake", ["a", "b"], RenderOptions(format="jpeg"))
    request = MemeRequested(meme_id="m", template_id="drake", texts=["I love memes", "b"])
    try:
        checked = await cached.check_request(request)
        assert checked.sentiment is not None and checked.sentiment.label in SENTIMENT_LABELS
        assert checked.verdict.source == "bert-tiny"
        first = await cached.check_render(checked, rendered, "drake")
        again = await cached.check_render(checked, rendered, "drake")
        assert first == again
        assert list(cached._template_verdicts) == ["drake"]
        fields = first.event_fields()
        assert fields["moderation"] in {"ok", "flagged", "rejected"}
        assert fields["sentiment"] in SENTIMENT_LABELS
        per_meme = await every.check_render(checked, rendered, "drake")
        assert every._template_verdicts == {}
        assert per_meme.verdict.decision in set(Decision)
    finally:
        await ai.aclose()


async def test_prepare_runs_on_the_preparation_threads_before_batching(
    tiny_models: TinyModels,
) -> None:
    """Decoding must not occupy the model's single inference thread: `prepare` runs on the
    preparation pool, and `run` gets the prepared inputs of a whole batch."""
    import threading

    from domain.ai.manager import TaskRunner

    seen: dict[str, set[str]] = {"prepare": set(), "run": set()}
    batches: list[list[str]] = []

    def prepare(_model: object, item: str) -> str:
        seen["prepare"].add(threading.current_thread().name)
        return item.upper()

    def run(_model: object, items: Sequence[str]) -> list[str]:
        seen["run"].add(threading.current_thread().name)
        batches.append(list(items))
        return [f"{i}!" for i in items]

    runner = TaskRunner(Task.SENTIMENT, run, lambda i: i, "warm", prepare=prepare)
    mgr = ModelManager(_settings(ai_model_size="small"), _registry(tiny_models))
    try:
        await mgr.infer(runner, "warm")  # load first, so the eight items queue together
        answers = await mgr.infer_many(runner, [f"m{i}" for i in range(8)])
        assert [a.value for a in answers] == [f"M{i}!" for i in range(8)]
        assert {a.source for a in answers} == {"bert-tiny"}
        assert all(name.startswith("ai-prepare") for name in seen["prepare"])
        assert all(name.startswith("ai-bert-tiny") for name in seen["run"])
        assert len(batches) - 1 < 8  # the eight items shared batches
        alone = await mgr.infer_alone(runner, "x")
        assert alone == "X!" and batches[-1] == ["X"]
    finally:
        await mgr.aclose()


async def test_infer_alone_is_a_batch_of_one_without_the_batching_wait(
    tiny_models: TinyModels,
) -> None:
    """The benchmark's one-at-a-time baseline: the model on one item, no AI_MAX_WAIT_MS."""
    import time

    from domain.ai.backends import ModelUnavailable

    mgr = ModelManager(
        _settings(ai_model_size="small", ai_max_wait_ms=1000), _registry(tiny_models)
    )
    try:
        await mgr.infer_alone(SENTIMENT, "load the model first")
        started = time.perf_counter()
        alone = await mgr.infer_alone(SENTIMENT, "I love this")
        assert time.perf_counter() - started < 0.5  # a batcher would hold it for 1 s
        assert isinstance(alone, Sentiment)
        batched = await mgr.infer(SENTIMENT, "I love this")
        assert batched.value == alone
        slot = next(iter(mgr._loaded.values()))
        assert slot.batchers[Task.SENTIMENT].items == 1  # only `infer` went through the batcher
    finally:
        await mgr.aclose()
    off = ModelManager(_settings(ai_enabled=False), _registry(tiny_models))
    with pytest.raises(ModelUnavailable):
        await off.infer_alone(SENTIMENT, "no model")
    await off.aclose()


async def test_a_corrupt_image_in_a_batch_fails_only_itself(manager: ModelManager) -> None:
    """Decoding moved out of the batch: a corrupt image still fails its own caller only."""
    images = [_png(), b"not an image", _png((200, 40, 40))]
    verdicts = await asyncio.gather(*(Moderator(manager).check_image(i) for i in images))
    assert [v.source for v in verdicts] == ["vit-tiny", "heuristic", "vit-tiny"]
    assert verdicts[1].label == "unreadable"


def test_caption_generation_stops_at_the_latest_deadline_of_its_batch(
    tiny_models: TinyModels,
) -> None:
    """A batch whose callers have all given up stops generating (the inference worker's
    requests carry deadlines), instead of holding the model for tokens nobody reads."""
    from domain.ai.backends import CausalLM

    model = CausalLM(_spec("gpt2-tiny", ModelKind.CAUSAL_LM, tiny_models.gpt2, SMALL), 1)
    prompt = model.prompt("You write captions.", "Topic: coffee. Two lines.")
    free = model.generate([prompt], 60)[0]
    bounded = model.generate([prompt], 60, max_time=0.0)[0]
    tokens = model.tokenizer
    assert len(tokens(bounded)["input_ids"]) <= 2 < len(tokens(free)["input_ids"])

    seen: list[float | None] = []
    generate = model.generate

    def recording(prompts: Sequence[str], max_new: int, max_time: float | None = None) -> list[str]:
        seen.append(max_time)
        return generate(prompts, max_new, max_time=max_time)

    model.generate = recording  # type: ignore[method-assign]
    runner = caption_runner(_settings())
    now = time.time()
    batch = [
        CaptionRequest("coffee", "drake", "Drake", "", 2, deadline=now - 1),
        CaptionRequest("tea", "drake", "Drake", "", 2, deadline=now + 0.5),
    ]
    results = runner.run(model, batch)
    assert len(results) == 2
    assert seen[0] is not None and 0 < seen[0] <= 0.5  # the later deadline bounds the batch
    runner.run(model, [CaptionRequest("coffee", "drake", "Drake", "", 2)])
    assert seen[1] is None  # no deadline (the render worker's callers): no bound
