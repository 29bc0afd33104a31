"""Template suggestion: which templates fit a text, or look like an uploaded image.

From text: cosine similarity between the text's embedding and each template's document (its
name, tags, category and description), embedded once per loaded model; the fallback scores
keyword overlap. From an image: a 64-bit difference hash of the upload against each
template's first frame (computed once per process), scored 1 - Hamming distance / 64; it finds
the template a meme was made from even after resizing, recompression and added captions.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from PIL import Image

from domain.ai import heuristics
from domain.ai.backends import Embedder
from domain.ai.manager import Answer, ModelManager, TaskRunner
from domain.ai.registry import Task
from domain.ai.types import Suggestion
from domain.templates import Template, TemplateCatalog

Ranking = list[tuple[str, float]]


def template_document(template: Template) -> str:
    parts = [template.name, ", ".join(template.tags), template.category, template.description]
    return ". ".join(p for p in parts if p)


def suggest_runner(catalog: TemplateCatalog) -> TaskRunner[str, Ranking]:
    templates = catalog.all()
    ids = [t.id for t in templates]
    documents = [template_document(t) for t in templates]

    def run(model: Embedder, queries: Sequence[str]) -> list[Ranking]:
        matrix = model.cached(("templates", tuple(ids)), lambda: model.embed(documents))
        similarities = model.embed([q or " " for q in queries]) @ matrix.T
        return [
            heuristics.top(zip(ids, (float(s) for s in row), strict=True), len(ids))
            for row in similarities
        ]

    def heuristic(query: str) -> Ranking:
        scores = heuristics.keyword_scores(query, documents)
        return heuristics.top(zip(ids, scores, strict=True), len(ids))

    return TaskRunner(Task.SUGGEST, run, heuristic, "warming up")


class TemplateSuggester:
    def __init__(self, manager: ModelManager, catalog: TemplateCatalog) -> None:
        self.manager = manager
        self.catalog = catalog
        self.runner = suggest_runner(catalog)
        self._hashes: dict[str, int] | None = None
        self._lock = threading.Lock()

    async def from_text(self, text: str, limit: int = 5) -> tuple[list[Suggestion], str]:
        """Ranked templates and the answer's source (a model's name, or `heuristic`)."""
        answer: Answer[Ranking] = await self.manager.infer(self.runner, text)
        return self._suggestions(answer.value, limit), answer.source

    async def from_image(self, image: Image.Image, limit: int = 5) -> list[Suggestion]:
        return await asyncio.to_thread(self.rank_image, image, limit)

    def rank_image(self, image: Image.Image, limit: int = 5) -> list[Suggestion]:
        target = heuristics.dhash(image)
        scores = [(tid, heuristics.hash_similarity(target, h)) for tid, h in self.hashes().items()]
        return self._suggestions(heuristics.top(scores, limit), limit)

    def hashes(self) -> dict[str, int]:
        """Template id -> dHash of its first frame, computed once."""
        with self._lock:
            if self._hashes is None:
                self._hashes = {t.id: heuristics.dhash(t.image()) for t in self.catalog.all()}
            return self._hashes

    def _suggestions(self, ranking: Sequence[tuple[str, float]], limit: int) -> list[Suggestion]:
        return [
            Suggestion(tid, self.catalog.get(tid).name, round(max(0.0, score), 4))
            for tid, score in ranking[:limit]
        ]
