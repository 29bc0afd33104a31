"""Caption suggestions: one short text per box of a template, from a topic.

The caption model is a small instruction-tuned causal LM (SmolLM2-135M-Instruct at `small`)
prompted with the template's name, description and box count; its answer is parsed line by
line (numbering, `Top:` prefixes and quotes stripped). An answer with no usable line is an
error for that item only, so the manager falls back for it alone; missing lines are filled
from the heuristic, so a caption always has exactly one text per box.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from domain.ai import heuristics
from domain.ai.backends import CausalLM
from domain.ai.manager import Answer, ModelManager, TaskRunner
from domain.ai.registry import Task
from domain.ai.types import Caption
from domain.settings import Settings
from domain.templates import Template

MAX_CAPTION_CHARS = 80
_PREFIX = re.compile(r"^\s*(?:\d+\s*[.):-]|[-*•]|(?:top|bottom|box\s*\d+|line\s*\d+)\s*:)\s*", re.I)
SYSTEM = (
    "You write short, funny meme captions: one line per text box, at most eight words each,"
    " numbered. Example for the topic 'coffee' and 2 boxes:\n1. Me before coffee\n"
    "2. Me after coffee"
)


@dataclass(frozen=True, slots=True)
class CaptionRequest:
    topic: str
    template_id: str
    name: str
    description: str
    boxes: int
    #: When the caller stops waiting (time.time()); a batch whose callers all have one stops
    #: generating at the latest, so a batch nobody waits for no longer holds the model.
    deadline: float | None = None

    @classmethod
    def for_template(cls, topic: str, template: Template) -> CaptionRequest:
        return cls(topic, template.id, template.name, template.description, len(template.boxes))


def user_prompt(request: CaptionRequest) -> str:
    about = f" ({request.description})" if request.description else ""
    return (
        f"Meme template: {request.name}{about}. Topic: {request.topic}. "
        f"Write exactly {request.boxes} short caption lines, numbered 1 to {request.boxes}."
    )


def parse_caption(text: str, request: CaptionRequest) -> Caption:
    """The model's answer as one text per box; ValueError when nothing usable came out."""
    lines = []
    for raw in text.splitlines():
        line = _PREFIX.sub("", raw).strip().strip("\"'“”").strip()
        if line and any(ch.isalnum() for ch in line):
            lines.append(line[:MAX_CAPTION_CHARS].strip())
    if not lines:
        raise ValueError("the caption model gave no usable line")
    fallback = heuristic(request).texts
    texts = [lines[i] if i < len(lines) else fallback[i] for i in range(request.boxes)]
    return Caption(texts)


def heuristic(request: CaptionRequest) -> Caption:
    return heuristics.caption(request.topic, request.boxes)


def caption_runner(settings: Settings) -> TaskRunner[CaptionRequest, Caption]:
    tokens_per_box = settings.ai_caption_tokens_per_box

    def run(model: CausalLM, requests: Sequence[CaptionRequest]) -> list[Caption | Exception]:
        prompts = [model.prompt(SYSTEM, user_prompt(r)) for r in requests]
        tokens = tokens_per_box * max(r.boxes for r in requests)
        deadlines = [r.deadline for r in requests]
        if all(d is not None for d in deadlines):
            max_time = max(d for d in deadlines if d is not None) - time.time()
            answers = model.generate(prompts, tokens, max_time=max_time)
        else:
            answers = model.generate(prompts, tokens)
        results: list[Caption | Exception] = []
        for answer, request in zip(answers, requests, strict=True):
            try:
                results.append(parse_caption(answer, request))
            except ValueError as exc:
                results.append(exc)
        return results

    sample = CaptionRequest("warming up", "warm-up", "Warm-up", "", 2)
    return TaskRunner(Task.CAPTION, run, heuristic, sample, timeout_s=settings.ai_caption_timeout_s)


class Captioner:
    """Suggests captions and fills a generation's empty boxes."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self.runner = caption_runner(manager.settings)

    async def suggest(self, topic: str, template: Template) -> Answer[Caption]:
        return await self.manager.infer(self.runner, CaptionRequest.for_template(topic, template))

    async def fill(
        self, template: Template, texts: Sequence[str], topic: str | None = None
    ) -> tuple[list[str], Answer[Caption] | None]:
        """`texts` padded to the template's boxes, each empty one filled by a suggestion."""
        padded = [*texts, *([""] * (len(template.boxes) - len(texts)))]
        if all(t.strip() for t in padded):
            return list(padded), None
        subject = topic or " / ".join(t for t in padded if t.strip()) or template.name
        answer = await self.suggest(subject, template)
        filled = [t if t.strip() else answer.value.texts[i] for i, t in enumerate(padded)]
        return filled, answer
