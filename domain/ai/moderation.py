"""Moderation of a meme's text and image, behind one interface: a score -> a `Verdict`.

Image: Open-NSFW (ONNX, onnxruntime) at `small`, or any transformers image classifier (a ViT)
whose labels include an unsafe one; its score is P(unsafe). Fallback: the skin-pixel share,
which is capped below the reject threshold (it can flag, never reject).

Text: a blocklist of phrases (threats, incitement, sexual content; always applied) combined
with a zero-shot score from the embedding model: the highest cosine similarity to a few
abusive anchor sentences, through a logistic centred on `ABUSIVE_MIDPOINT`. Calibrated on
MiniLM: everyday meme captions, dark idioms included ("I'm dead lol", "killing it at the gym",
"I will destroy this pizza"), stay at or below 0.45, direct abuse ("I will hurt you", "you are
worthless and should die") lands at 0.7-0.9; subtler hate scores lower and is left to the
blocklist and human review. The zero-shot score is scaled by `ZERO_SHOT_WEIGHT` so on its own
it can flag a text for review but never reject it: a sentence-similarity model cannot be
trusted to remove someone's meme. Thresholds come from settings (`MODERATION_*`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from domain.ai import heuristics
from domain.ai.backends import Embedder, ImageScorer
from domain.ai.manager import Answer, ModelManager, TaskRunner
from domain.ai.registry import Task
from domain.ai.sentiment import caption_text
from domain.ai.types import Decision, Verdict
from domain.metrics import MODERATION_DECISIONS
from domain.settings import Settings

ABUSIVE_ANCHORS = (
    "I will hurt you and your family",
    "You are worthless and should die",
    "All people of that race are subhuman",
    "Go kill yourself",
    "Explicit sexual content with graphic nudity",
    "I am going to attack them with a weapon",
)
ABUSIVE_MIDPOINT = 0.55
ABUSIVE_SCALE = 0.05
ZERO_SHOT_WEIGHT = 0.8
MAX_IMAGE_PIXELS = 40_000_000


def decide(score: float, flag: float, reject: float) -> Decision:
    if score >= reject:
        return Decision.REJECTED
    if score >= flag:
        return Decision.FLAGGED
    return Decision.OK


def _zero_shot(model: Embedder, texts: Sequence[str]) -> list[float]:
    anchors = model.cached("moderation-anchors", lambda: model.embed(list(ABUSIVE_ANCHORS)))
    nearest = (model.embed([t or " " for t in texts]) @ anchors.T).max(axis=1)
    probability = 1.0 / (1.0 + np.exp(-(nearest - ABUSIVE_MIDPOINT) / ABUSIVE_SCALE))
    return [
        float(p) * ZERO_SHOT_WEIGHT if t.strip() else 0.0
        for p, t in zip(probability, texts, strict=True)
    ]


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise ValueError("image too large to moderate")
    image.seek(0)
    return image.convert("RGB")


def _prepare_image(model: ImageScorer, data: bytes) -> np.ndarray:
    """Decoding and resizing, on the manager's preparation threads: a corrupt image fails its
    own caller here, and the model's inference thread is left to run the model."""
    return model.preprocess(_open(data))


def _score_images(model: ImageScorer, inputs: Sequence[np.ndarray]) -> list[float]:
    return [float(score) for score in model.scores(np.stack(inputs))]


def _image_heuristic(data: bytes) -> float:
    return heuristics.skin_score(_open(data))


def _sample_image() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


TEXT = TaskRunner(Task.MODERATION_TEXT, _zero_shot, lambda _text: 0.0, "warming up")
IMAGE = TaskRunner(
    Task.MODERATION_IMAGE,
    _score_images,
    _image_heuristic,
    _sample_image(),
    prepare=_prepare_image,
)


def text_verdict(texts: Sequence[str], score: float, source: str, settings: Settings) -> Verdict:
    """The verdict on a meme's texts from the model's score (0.0 and source `heuristic` when no
    model answered, which leaves the blocklist): the stricter of the two decides."""
    block_score, block_label = heuristics.blocklist(caption_text(texts))
    s = settings
    if block_score >= score and block_label is not None:
        decision = decide(block_score, s.moderation_text_flag, s.moderation_text_reject)
        return Verdict(decision, block_score, "blocklist", f"text: {block_label}", "blocklist")
    decision = decide(score, s.moderation_text_flag, s.moderation_text_reject)
    reason = "text: resembles abusive language" if decision is not Decision.OK else None
    label = "toxic" if decision is not Decision.OK else "clean"
    return Verdict(decision, round(score, 4), label, reason, source)


class Moderator:
    """Scores texts and images and turns the scores into verdicts with reasons."""

    def __init__(self, manager: ModelManager, settings: Settings | None = None) -> None:
        self.manager = manager
        self.settings = settings or manager.settings

    async def check_text(self, texts: Sequence[str]) -> Verdict:
        text = caption_text(texts)  # the same text sentiment embeds: one embedding serves both
        answer: Answer[float] = await self.manager.infer(TEXT, text)
        verdict = text_verdict(texts, answer.value, answer.source, self.settings)
        MODERATION_DECISIONS.labels(kind="text", decision=verdict.decision.value).inc()
        return verdict

    async def check_image(self, data: bytes) -> Verdict:
        s = self.settings
        try:
            answer: Answer[float] = await self.manager.infer(IMAGE, data)
            score = answer.value
            if answer.heuristic:
                score = min(score, s.moderation_image_reject - 1e-3)
        except Exception as exc:  # undecodable: the renderer made it, so flag for a human
            verdict = Verdict(Decision.FLAGGED, 0.0, "unreadable", f"image: {exc}", "heuristic")
        else:
            decision = decide(score, s.moderation_image_flag, s.moderation_image_reject)
            reason = f"image: nudity score {score:.2f}" if decision is not Decision.OK else None
            label = "nsfw" if decision is not Decision.OK else "clean"
            verdict = Verdict(decision, round(score, 4), label, reason, answer.source)
        MODERATION_DECISIONS.labels(kind="image", decision=verdict.decision.value).inc()
        return verdict
