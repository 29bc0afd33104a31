"""The `meme.requests` event a generate request (or a batch item) becomes."""

from __future__ import annotations

from fastapi import Request

from api.auth import Principal
from api.models import GenerateRequest
from domain.events import BoxPlacement, MemeRequested
from domain.ids import new_id


def request_event(body: GenerateRequest, request: Request, principal: Principal) -> MemeRequested:
    return MemeRequested(
        meme_id=new_id(),
        template_id=body.template_id,
        texts=body.texts,
        format=body.format,
        quality=body.quality.value if body.quality else None,
        user_id=principal.user_id,
        request_id=request.headers.get("x-request-id"),
        transform=body.transform,
        boxes=None if body.boxes is None else [BoxPlacement(**b.model_dump()) for b in body.boxes],
        filters=body.filters,
    )
