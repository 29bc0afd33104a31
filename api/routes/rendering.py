"""What the web editor needs to draw what the renderer draws: the server's caption fonts (the
installed files, never committed) at `/fonts/<file>`, the metrics it lays text out with at
`/api/fonts/<family>` (so the canvas breaks lines where the renderer does), and the filters'
constants at `/api/render/filters` (the file `domain.rendering.filters` reads)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.problems import Problem, problem_responses
from domain.rendering.filters import PARAMS
from domain.rendering.font_metrics import font_files, font_metrics
from domain.rendering.fonts import FAMILIES

router = APIRouter(tags=["web"])
_MEDIA = {".ttf": "font/ttf", ".otf": "font/otf"}


@router.get(
    "/fonts/{name}",
    response_class=FileResponse,
    responses=problem_responses(422, 404, descriptions={404: "Not a font the renderer uses"}),
    summary="A font file the renderer draws captions with",
)
async def font_file(name: str) -> FileResponse:
    """Only files a family resolves to: the name is a key, never a path."""
    path = (await asyncio.to_thread(font_files)).get(name)
    if path is None:
        raise Problem(404, "font-not-found", "No such font", f"{name!r} is not a caption font")
    media = _MEDIA.get(name[name.rfind(".") :].lower(), "application/octet-stream")
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=86400"})


@router.get(
    "/api/fonts/{family}",
    responses=problem_responses(422, 404, descriptions={404: "No such font family"}),
    summary="The metrics the renderer fits captions with, for the editor's layout",
)
async def font_family_metrics(family: str) -> dict[str, Any]:
    if family not in FAMILIES:
        detail = f"use one of {sorted(FAMILIES)}"
        raise Problem(404, "font-not-found", "No such font family", detail)
    metrics = await asyncio.to_thread(font_metrics, family)
    return metrics | {"url": f"/fonts/{metrics['file']}"}


@router.get("/api/render/filters", summary="The renderer's filter constants, for the editor")
async def filter_params() -> dict[str, Any]:
    return PARAMS
