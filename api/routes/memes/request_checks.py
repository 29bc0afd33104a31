"""What a generate request (or a batch item) is refused for before it reaches Kafka: a 422.

The template comes from the lookup the render worker uses too (sinks/postgres/template_lookup.py),
and the layout is judged by the engine's own validator (domain/rendering/validation.py), so what
is accepted here renders there.
"""

from __future__ import annotations

import asyncio
import functools

from api.dependencies import Services
from api.models import GenerateRequest
from api.problems import Problem, unknown_template
from domain.rendering.errors import InvalidBox, RenderError, TextTooLong, TooManyTexts
from domain.rendering.validation import check_generation
from domain.templates import Template


async def _template(template_id: str, services: Services) -> Template:
    """The catalog's template, else an uploaded one (PostgreSQL); 422 when neither has it."""
    template = await services.template_lookup.find(template_id)
    if template is None:
        raise unknown_template(template_id)
    return template


#: The problem each refusal of the validator is answered with, most specific first.
_PROBLEMS: tuple[tuple[type[RenderError], str, str], ...] = (
    (TooManyTexts, "too-many-texts", "More texts than the template has text boxes"),
    (TextTooLong, "text-too-long", "Text too long"),
    (InvalidBox, "invalid-boxes", "A box does not fit the image"),
    (RenderError, "invalid-filter", "Invalid transform or filters"),  # options, pixel budget
)


async def check_request(request: GenerateRequest, services: Services) -> None:
    """Raises the 422 Problem for what `check_generation` refuses in `request`."""
    template = await _template(request.template_id, services)
    placements = None
    if request.boxes is not None:
        placements = [(b.x, b.y, b.width, b.height) for b in request.boxes]
    check = functools.partial(
        check_generation,
        template,
        request.texts,
        max_text_length=services.settings.max_text_length,
        transform=request.transform,
        filters=request.filters,
        placements=placements,
    )
    try:
        if request.transform or request.filters or placements is not None:
            await asyncio.to_thread(check)  # the dry run draws: off the event loop
        else:
            check()
    except RenderError as exc:
        slug, title = next((s, t) for kind, s, t in _PROBLEMS if isinstance(exc, kind))
        raise Problem(422, slug, title, str(exc)) from exc
