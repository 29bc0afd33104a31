"""Sentiment of a caption: zero-shot against labelled anchor sentences.

Each label has a handful of anchor sentences written in meme register; a caption's score for
a label is the mean cosine similarity to that label's two nearest anchors, and a softmax over
the three labels (temperature 0.05) gives the label and its confidence. No training, no extra
weights: the embedding model (all-MiniLM-L6-v2 at `small`) does the work, and the anchors'
embeddings are computed once per loaded model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from domain.ai import heuristics
from domain.ai.backends import Embedder
from domain.ai.manager import Answer, ModelManager, TaskRunner
from domain.ai.registry import Task
from domain.ai.types import SENTIMENT_LABELS, Sentiment

ANCHORS: dict[str, tuple[str, ...]] = {
    "positive": (
        "I love this so much",
        "This is the best day ever",
        "Finally it works, I'm so happy",
        "What a great win, feeling proud",
        "This is wholesome and makes me smile",
        "Weekend vibes, everything is awesome",
    ),
    "neutral": (
        "This is a thing that exists",
        "Here is a picture of a cat",
        "The meeting is at three o'clock",
        "Two options on a table",
        "A person looking at something",
        "Writing code and reading documentation",
    ),
    "negative": (
        "I hate this so much",
        "This is the worst day ever",
        "Everything is broken and I want to cry",
        "Another failure, I'm so tired and sad",
        "This is awful and makes me angry",
        "Monday morning deadline panic",
    ),
}
TEMPERATURE = 0.05
NEAREST = 2


def classify(similarities: np.ndarray, labels: Sequence[str]) -> list[Sentiment]:
    """Anchor similarities (texts x anchors) -> one Sentiment per text."""
    label_array = np.asarray(labels)
    per_label = []
    for label in SENTIMENT_LABELS:
        columns = similarities[:, label_array == label]
        nearest = np.sort(columns, axis=1)[:, -NEAREST:]
        per_label.append(nearest.mean(axis=1))
    scores = np.stack(per_label, axis=1) / TEMPERATURE
    scores -= scores.max(axis=1, keepdims=True)
    probabilities = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    best = probabilities.argmax(axis=1)
    return [
        Sentiment(SENTIMENT_LABELS[int(i)], round(float(probabilities[row, i]), 4))
        for row, i in enumerate(best)
    ]


def _run(model: Embedder, texts: Sequence[str]) -> list[Sentiment]:
    labels = [label for label, anchors in ANCHORS.items() for _ in anchors]
    anchors = model.cached(
        "sentiment-anchors", lambda: model.embed([a for group in ANCHORS.values() for a in group])
    )
    results = classify(model.embed([t or " " for t in texts]) @ anchors.T, labels)
    return [
        Sentiment("neutral", 1.0) if not text.strip() else result
        for text, result in zip(texts, results, strict=True)
    ]


SENTIMENT = TaskRunner(Task.SENTIMENT, _run, heuristics.sentiment, "warming up the model")


def caption_text(texts: Sequence[str]) -> str:
    """A meme's caption as one text: its boxes in order."""
    return " / ".join(t.strip() for t in texts if t.strip())


class SentimentAnalyzer:
    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager

    async def analyze(self, text: str) -> Answer[Sentiment]:
        return await self.manager.infer(SENTIMENT, text)
