"""Moderation and sentiment inside the render path, between `meme.requests` and storage.

Design: the simplest one that is correct and batched. The render agent already holds each
request from consume to commit, so it calls this step itself rather than passing the request
through another topic: the texts are checked (with the caption's sentiment, concurrently)
before rendering, and the rendered image (its `medium` variant) after rendering and before
anything is stored. Each check is one `await` on the process's model manager, whose
micro-batchers group the checks of all concurrent agent instances into one model call, so the
render path never runs one-at-a-time inference.

Images of catalogue templates: a meme's pixels are the template's own artwork plus its texts,
and the texts are moderated already, so by default (MODERATION_IMAGE_EVERY_MEME=false) the
template's image is scored once per worker and that verdict reused; Open-NSFW costs 18-30 ms of
CPU per image, as much as a render, which would otherwise halve a worker's rate. Any other
image (and every image when the setting is true) is scored after rendering.

Outcomes: at or above a reject threshold the meme is `rejected`: nothing is stored, the
MemeRendered event has status `failed`, moderation `rejected` and the reason in `error` (it is
never dropped silently: PostgreSQL, the feed and analytics all see it). Between the flag and
reject thresholds it is rendered, stored and `flagged` for review. Models load in the
background at worker start; until then (or whenever a model is slow or failing) the manager's
heuristics answer within AI_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass
from typing import Any

from domain.ai.sentiment import caption_text
from domain.ai.service import AIService
from domain.ai.types import Decision, Sentiment, Verdict
from domain.events import MemeRequested
from domain.rendering import RenderedMeme
from domain.settings import Settings
from domain.templates import TemplateCatalog

log = logging.getLogger(__name__)
MODERATED_VARIANT = "medium"  # at most 480 px: enough for a 224 px classifier, cheap to decode


@dataclass(frozen=True, slots=True)
class Checked:
    """What the step found out about one meme so far."""

    verdict: Verdict
    sentiment: Sentiment | None

    @property
    def rejected(self) -> bool:
        return self.verdict.decision is Decision.REJECTED

    def with_image(self, image: Verdict) -> Checked:
        return Checked(self.verdict.worse(image), self.sentiment)

    def event_fields(self) -> dict[str, Any]:
        """The MemeRendered v2 fields this check fills."""
        verdict = self.verdict
        return {
            "moderation": verdict.decision.value,
            "moderation_label": verdict.label,
            "moderation_score": verdict.score,
            "moderation_reason": verdict.reason,
            "sentiment": self.sentiment.label if self.sentiment else None,
            "sentiment_score": self.sentiment.score if self.sentiment else None,
        }


class ModerationStep:
    def __init__(
        self,
        ai: AIService,
        catalog: TemplateCatalog | None = None,
        *,
        every_meme: bool = False,
    ) -> None:
        self.ai = ai
        self.catalog = catalog or TemplateCatalog.default()
        self.every_meme = every_meme
        self._warm: asyncio.Task[dict[str, str]] | None = None
        self._template_verdicts: dict[str, asyncio.Future[Verdict]] = {}

    @classmethod
    def create(cls, settings: Settings) -> ModerationStep | None:
        """The step, or None when AI_ENABLED is false (then memes are not moderated)."""
        if not settings.ai_enabled:
            return None
        catalog = TemplateCatalog.default()
        return cls(
            AIService(settings, catalog), catalog, every_meme=settings.moderation_image_every_meme
        )

    def start_warm_up(self) -> None:
        """Loads the models in the background; the worker consumes meanwhile."""
        if self._warm is None:
            self._warm = asyncio.get_running_loop().create_task(self.warm_up())

    async def warm_up(self) -> dict[str, str]:
        """Loads the models, then scores every catalogue template's image once."""
        try:
            sources = await self.ai.warm_stream()
            if not self.every_meme:
                await asyncio.gather(*(self.template_verdict(t.id) for t in self.catalog.all()))
            return sources
        except Exception:  # warm-up is an optimisation: a failure here must not stop the worker
            log.exception("AI warm-up failed; moderation answers with heuristics")
            return {}

    async def check_request(self, request: MemeRequested) -> Checked:
        """Text moderation and the caption's sentiment, concurrently."""
        verdict, sentiment = await asyncio.gather(
            self.ai.moderator.check_text(request.texts),
            self.ai.sentiment.analyze(caption_text(request.texts)),
        )
        return Checked(verdict, sentiment.value)

    async def check_render(
        self, checked: Checked, rendered: RenderedMeme, template_id: str | None = None
    ) -> Checked:
        if not self.every_meme and template_id is not None and template_id in self.catalog:
            return checked.with_image(await self.template_verdict(template_id))
        variants = rendered.variants
        image = variants.get(MODERATED_VARIANT) or next(iter(variants.values()), None)
        if image is None:
            return checked
        return checked.with_image(await self.ai.moderator.check_image(image.data))

    async def template_verdict(self, template_id: str) -> Verdict:
        """The template image's verdict, scored once; a heuristic answer is not kept."""
        task = self._template_verdicts.get(template_id)
        if task is None:
            task = asyncio.ensure_future(self._score_template(template_id))
            self._template_verdicts[template_id] = task
        try:
            verdict = await asyncio.shield(task)
        except Exception:
            self._template_verdicts.pop(template_id, None)
            raise
        if verdict.source == "heuristic":  # a model was not ready: score again next time
            self._template_verdicts.pop(template_id, None)
        return verdict

    async def _score_template(self, template_id: str) -> Verdict:
        data = await asyncio.to_thread(_template_png, self.catalog, template_id)
        return await self.ai.moderator.check_image(data)

    async def aclose(self) -> None:
        if self._warm is not None and not self._warm.done():
            self._warm.cancel()
        await self.ai.aclose()


def _template_png(catalog: TemplateCatalog, template_id: str) -> bytes:
    buffer = io.BytesIO()
    catalog.get(template_id).image().save(buffer, format="PNG")
    return buffer.getvalue()
