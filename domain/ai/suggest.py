"""Template suggestion: which templates fit a text, or look like an uploaded image.

From text: cosine similarity between the text's embedding and each template's document (its
name, tags, category and description), embedded once per loaded model; the fallback scores
keyword overlap. Uploaded templates take part too: the API hands their metadata to
`add_uploads` (domain code cannot read PostgreSQL), each is embedded once per loaded model
(uploads never change), and at most MAX_UPLOADS of the newest are ranked, so the ranking stays
one matrix product. From an image: a 64-bit difference hash of the upload against each
catalogue template's first frame (computed once per process), scored 1 - Hamming distance / 64;
it finds the template a meme was made from even after resizing, recompression and added
captions. Uploaded templates are not hashed: their pixels are in object storage, up to
MAX_UPLOAD_BYTES each, which is not a cheap read per suggestion process.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from domain.ai import heuristics
from domain.ai.backends import Embedder
from domain.ai.manager import HEURISTIC, Answer, ModelManager, TaskRunner
from domain.ai.registry import Task
from domain.ai.types import Suggestion
from domain.templates import Template, TemplateCatalog

Ranking = list[tuple[str, float]]

#: Uploaded templates ranked at most, the newest kept: each is one embedding row, and the first
#: suggestion after a model loads embeds them all (a slow one falls back to the heuristic once).
MAX_UPLOADS = 2000
#: How many of the best templates a ranking keeps (the API asks for at most 20).
MAX_RANKED = 50
_EMBED_CHUNK = 64  # upload documents per model call: bounded padding and memory


def template_document(template: Template) -> str:
    parts = [template.name, ", ".join(template.tags), template.category, template.description]
    return ". ".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class Candidates:
    """What a text is ranked against: the catalogue's templates, then uploads (oldest first).

    Replaced whole when uploads are added, so a batch ranks against one consistent set; the
    version tells the per-model embedding cache that the set changed.
    """

    ids: tuple[str, ...]
    documents: tuple[str, ...]
    names: dict[str, str]
    catalog_size: int
    version: int

    @classmethod
    def of(
        cls, catalog: Sequence[Template], uploads: Sequence[Template], version: int
    ) -> Candidates:
        templates = [*catalog, *uploads]
        return cls(
            ids=tuple(t.id for t in templates),
            documents=tuple(template_document(t) for t in templates),
            names={t.id: t.name for t in templates},
            catalog_size=len(catalog),
            version=version,
        )


class _UploadRows:
    """One loaded model's embeddings of uploaded templates, each computed once, and the matrix
    of every candidate, rebuilt only when the candidates change (runs on the model's thread)."""

    def __init__(self) -> None:
        self.rows: dict[str, np.ndarray] = {}
        self.version = -1
        self.matrix: np.ndarray | None = None

    def stacked(self, model: Embedder, catalog_rows: np.ndarray, current: Candidates) -> np.ndarray:
        if self.matrix is not None and self.version == current.version:
            return self.matrix
        start = current.catalog_size
        uploads = list(zip(current.ids[start:], current.documents[start:], strict=True))
        missing = [(tid, doc) for tid, doc in uploads if tid not in self.rows]
        for i in range(0, len(missing), _EMBED_CHUNK):
            chunk = missing[i : i + _EMBED_CHUNK]
            embedded = model.embed([doc for _, doc in chunk])
            for (tid, _), row in zip(chunk, embedded, strict=True):
                self.rows[tid] = row
        self.rows = {tid: self.rows[tid] for tid, _ in uploads}  # forget the ones dropped
        self.matrix = np.vstack([catalog_rows, *(self.rows[tid] for tid, _ in uploads)])
        self.version = current.version
        return self.matrix


def suggest_runner(
    catalog: TemplateCatalog, candidates: Callable[[], Candidates] | None = None
) -> TaskRunner[str, Ranking]:
    """The suggestion task; `candidates` gives the current set (default: the catalogue's)."""
    fixed = Candidates.of(catalog.all(), [], 0)
    current_candidates = candidates or (lambda: fixed)
    catalog_ids = fixed.ids

    def run(model: Embedder, queries: Sequence[str]) -> list[Ranking]:
        current = current_candidates()
        matrix = model.cached(
            ("templates", catalog_ids), lambda: model.embed(list(fixed.documents))
        )
        if len(current.ids) > current.catalog_size:
            matrix = model.cached(("uploaded templates",), _UploadRows).stacked(
                model, matrix, current
            )
        similarities = model.embed([q or " " for q in queries]) @ matrix.T
        return [
            heuristics.top(zip(current.ids, (float(s) for s in row), strict=True), MAX_RANKED)
            for row in similarities
        ]

    def heuristic(query: str) -> Ranking:
        current = current_candidates()
        scores = heuristics.keyword_scores(query, current.documents)
        return heuristics.top(zip(current.ids, scores, strict=True), MAX_RANKED)

    return TaskRunner(Task.SUGGEST, run, heuristic, "warming up")


class TemplateSuggester:
    """Ranks templates for a text (the model, through `manager`) or an image (hashes).

    Without a manager (the API, which loads no model) it still ranks images, keeps the uploads
    and answers texts with the keyword heuristic (`heuristic`), the fallback the API gives when
    no inference worker answers in time.
    """

    def __init__(self, manager: ModelManager | None, catalog: TemplateCatalog) -> None:
        self.manager = manager
        self.catalog = catalog
        self._catalog_templates = catalog.all()
        self._uploads: dict[str, Template] = {}  # oldest first
        self.candidates = Candidates.of(self._catalog_templates, [], 0)
        self.runner = suggest_runner(catalog, lambda: self.candidates)
        self._hashes: dict[str, int] | None = None
        self._lock = threading.Lock()

    def add_uploads(self, templates: Iterable[Template]) -> int:
        """Adds uploaded templates to text suggestions (known ids are skipped; beyond
        MAX_UPLOADS the oldest leave); returns how many were new."""
        new = [t for t in templates if t.id not in self._uploads and t.id not in self.catalog]
        if not new:
            return 0
        for template in new:
            self._uploads[template.id] = template
        while len(self._uploads) > MAX_UPLOADS:
            del self._uploads[next(iter(self._uploads))]
        self.candidates = Candidates.of(
            self._catalog_templates, list(self._uploads.values()), self.candidates.version + 1
        )
        return len(new)

    async def from_text(self, text: str, limit: int = 5) -> tuple[list[Suggestion], str]:
        """Ranked templates and the answer's source (a model's name, or `heuristic`)."""
        answer = await self.answer(text, limit)
        return answer.value, answer.source

    async def answer(self, text: str, limit: int = 5) -> Answer[list[Suggestion]]:
        """The model's ranking (or its fallback's) as an Answer, for the inference worker."""
        if self.manager is None:
            return Answer(self.heuristic(text, limit), HEURISTIC, None, True)
        ranked: Answer[Ranking] = await self.manager.infer(self.runner, text)
        return Answer(
            self._suggestions(ranked.value, limit), ranked.source, ranked.size, ranked.fallback
        )

    def heuristic(self, text: str, limit: int = 5) -> list[Suggestion]:
        """Keyword overlap with the catalogue's and the uploads' documents: no model."""
        return self._suggestions(self.runner.heuristic(text), limit)

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
        names = self.candidates.names  # the newest set: an id it dropped meanwhile keeps its id
        return [
            Suggestion(tid, names.get(tid, tid), round(max(0.0, score), 4))
            for tid, score in ranking[:limit]
        ]
