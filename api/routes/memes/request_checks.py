"""What a generate request (or a batch item) is refused for before it reaches Kafka: a 422.

The template comes from the lookup the render worker uses too (sinks/postgres/template_lookup.py),
and the layout is judged by the engine's own validator (domain/rendering/validation.py), so what
is accepted here renders there.
"""

from __future__ import annotations

import asyncio

from api.dependencies import Services
from api.models import GenerateRequest
from api.problems import Problem
from domain.rendering.errors import InvalidBox, InvalidOptions, RenderError
from domain.rendering.validation import check_filters, check_layout
from domain.templates import Template


async def _template(template_id: str, services: Services) -> Template:
    """The catalog's template, else an uploaded one (PostgreSQL); 422 when neither has it."""
    template = await services.template_lookup.find(template_id)
    if template is None:
        raise Problem(
            422,
            "unknown-template",
            "Unknown template",
            f"no template has the id {template_id!r}",
            template_id=template_id,
        )
    return template


async def check_request(request: GenerateRequest, services: Services) -> None:
    template = await _template(request.template_id, services)
    if len(request.texts) > len(template.boxes):
        raise Problem(
            422,
            "too-many-texts",
            "More texts than the template has text boxes",
            f"{request.template_id!r} has {len(template.boxes)} boxes, got {len(request.texts)}",
        )
    limit = services.settings.max_text_length
    if any(len(t) > limit for t in request.texts):
        raise Problem(422, "text-too-long", "Text too long", f"each text is at most {limit} chars")
    _check_layout(request, template)
    if request.transform or request.filters or request.boxes is not None:
        await asyncio.to_thread(_dry_run, request, template)


def _dry_run(request: GenerateRequest, template: Template) -> None:
    """The engine's layout on a blank frame (domain.rendering.validation.check_layout): a crop
    or a box outside the transformed image, or a transform past the pixel budget, is a 422
    here rather than a failed meme later."""
    placements = None
    if request.boxes is not None:
        placements = [(b.x, b.y, b.width, b.height) for b in request.boxes]
    try:
        check_layout(
            template.width,
            template.height,
            frames=template.frame_count,
            boxes=len(template.boxes),
            transform=request.transform,
            filters=request.filters,
            placements=placements,
        )
    except InvalidBox as exc:
        raise Problem(422, "invalid-boxes", "A box lies outside the image", str(exc)) from exc
    except RenderError as exc:  # InvalidOptions, ImageTooLarge
        raise Problem(422, "invalid-filter", "Invalid transform or filters", str(exc)) from exc


def _check_layout(request: GenerateRequest, template: Template) -> None:
    """What can be judged without pixels; `_dry_run` judges the rest."""
    for name, specs in (("transform", request.transform), ("filters", request.filters)):
        try:
            check_filters(specs, name)
        except InvalidOptions as exc:
            raise Problem(422, "invalid-filter", f"Invalid {name}", str(exc)) from exc
    if request.boxes is None:
        return
    if len(request.boxes) != len(template.boxes):
        raise Problem(
            422,
            "invalid-boxes",
            "One placement per text box",
            f"{request.template_id!r} has {len(template.boxes)} boxes, got {len(request.boxes)}",
        )
    if not request.transform:  # the image is the template's own size
        for i, b in enumerate(request.boxes):
            if b.x + b.width > template.width or b.y + b.height > template.height:
                raise Problem(
                    422,
                    "invalid-boxes",
                    "A box lies outside the image",
                    f"box {i + 1} is outside the {template.width}x{template.height} template",
                )
