"""The web editor (`/`), live feed (`/feed`), template upload (`/templates`) and analytics
(`/analytics`, live data: not precached) pages: static ES modules, no build step; and the
service worker (`/sw.js`) that keeps the first three working offline.

Plain modules load fast enough here (a dozen small files over HTTP/1.1 keep-alive, cached by
ETag), so a bundler would not pay for itself. Template previews render the blank template
server-side (`Template.image()`), resized and cached per process, so the picker never ships
template artwork it does not show.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image

from api.dependencies import ServicesDep
from api.problems import Problem, problem_responses
from domain.templates import TemplateCatalog, UnknownTemplate

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(tags=["web"])
PREVIEW_WIDTHS = (160, 320, 640, 1024)


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC_DIR)


@router.get("/", include_in_schema=False)
async def editor() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/feed", include_in_schema=False)
async def feed_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "feed.html", headers={"Cache-Control": "no-cache"})


@router.get("/templates", include_in_schema=False)
async def templates_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "templates.html", headers={"Cache-Control": "no-cache"})


@router.get("/analytics", include_in_schema=False)
async def analytics_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "analytics.html", headers={"Cache-Control": "no-cache"})


#: The pages the service worker precaches with the static files.
PAGES = ("/", "/feed", "/templates")
SERVICE_WORKER = "sw.js"


def service_worker_script(static_dir: Path = STATIC_DIR) -> bytes:
    """sw.js with the shell it precaches and the shell's version (a hash of every static
    file's path and bytes) prepended: a deploy that changes a file changes the worker's bytes,
    which is what makes browsers install the new worker and drop the old shell. Files are
    hashed again only when one's size or mtime moved (an edit under `--reload` counts too)."""
    files = sorted(f for f in static_dir.rglob("*") if f.is_file() and not f.name.startswith("."))
    stats = tuple((f, f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return _script(static_dir, stats)


@lru_cache(maxsize=4)
def _script(static_dir: Path, stats: tuple[tuple[Path, int, int], ...]) -> bytes:
    digest = hashlib.sha256()
    for f, _, _ in stats:
        digest.update(f.relative_to(static_dir).as_posix().encode() + b"\0" + f.read_bytes())
    names = [f.relative_to(static_dir).as_posix() for f, _, _ in stats]
    names.remove(SERVICE_WORKER)  # the worker does not cache itself
    shell = [*PAGES, *(f"/static/{name}" for name in names)]
    head = (
        f"self.SHELL_VERSION = {json.dumps(digest.hexdigest()[:16])};\n"
        f"self.SHELL_FILES = {json.dumps(shell)};\n"
    )
    return head.encode() + (static_dir / SERVICE_WORKER).read_bytes()


@router.get("/sw.js", include_in_schema=False)
async def service_worker() -> Response:
    """From the root, so its scope is the whole site; `no-cache` so browsers check it on
    every navigation (they do not use the HTTP cache for it past 24 h anyway)."""
    return Response(
        await asyncio.to_thread(service_worker_script),
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"},
    )


@lru_cache(maxsize=256)
def _preview(catalog: TemplateCatalog, template_id: str, width: int, lossless: bool) -> bytes:
    return _encode(catalog.get(template_id).image(), width, lossless)


def _encode(image: Image.Image, width: int, lossless: bool = False) -> bytes:
    if image.width > width:
        image = image.resize((width, max(1, round(image.height * width / image.width))))
    out = io.BytesIO()
    if lossless:  # the editor filters these pixels: they must be the renderer's own
        image.convert("RGB").save(out, "WEBP", lossless=True, quality=50, method=2)
    else:
        image.convert("RGB").save(out, "WEBP", quality=80, method=4)
    return out.getvalue()


async def _uploaded_preview(
    services: ServicesDep, template_id: str, width: int, lossless: bool = False
) -> bytes | None:
    """Uploaded templates live in object storage; previews of them are made on demand."""
    if services.data is None:
        return None
    try:
        record = await services.data.templates.get(template_id)
        if record is None or not record.image_key:
            return None
        stored = await asyncio.to_thread(services.storage.get, record.image_key)
    except Exception:  # a store that is down only costs the thumbnail
        return None

    def render() -> bytes:
        with Image.open(io.BytesIO(stored.data)) as image:
            image.seek(0)
            return _encode(image.convert("RGB"), width, lossless)

    return await asyncio.to_thread(render)


@lru_cache(maxsize=32)
def _animation(catalog: TemplateCatalog, template_id: str, width: int) -> bytes:
    """Every frame of a catalogue template, lossless, with its timing: the editor previews an
    animated template animated, filtering the renderer's own frames."""
    frames = catalog.get(template_id).frames()
    images = [
        im.convert("RGB")
        if im.width <= width
        else im.convert("RGB").resize((width, max(1, round(im.height * width / im.width))))
        for im in frames.images
    ]
    out = io.BytesIO()
    images[0].save(
        out,
        "WEBP",
        save_all=True,
        append_images=images[1:],
        duration=frames.durations,
        loop=frames.loop,
        lossless=True,
        quality=50,
        method=2,
    )
    return out.getvalue()


@router.get(
    "/api/templates/{template_id}/animation",
    responses={
        200: {"content": {"image/webp": {}}, "description": "The frames"},
        **problem_responses(404, 422, descriptions={404: "No such catalogue template"}),
    },
    response_class=Response,
    summary="Every frame of a catalogue template, lossless animated WebP, for the editor",
)
async def template_animation(
    template_id: str,
    services: ServicesDep,
    width: Annotated[int, Query(ge=16, le=2048)] = 1024,
) -> Response:
    width = next((w for w in PREVIEW_WIDTHS if w >= width), PREVIEW_WIDTHS[-1])
    try:
        data = await asyncio.to_thread(_animation, services.catalog, template_id, width)
    except UnknownTemplate as exc:
        raise Problem(404, "template-not-found", "No such template", str(exc)) from exc
    return Response(
        data, media_type="image/webp", headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get(
    "/api/templates/{template_id}/preview",
    responses={
        200: {"content": {"image/webp": {}}, "description": "The preview"},
        304: {"description": "`If-None-Match` matched: the cached preview is current"},
        **problem_responses(404, 422, descriptions={404: "No such template"}),
    },
    response_class=Response,
    summary="The blank template, rendered, at most `width` pixels wide (WebP)",
)
async def template_preview(
    template_id: str,
    services: ServicesDep,
    request: Request,
    width: Annotated[int, Query(ge=16, le=2048)] = 320,
    lossless: Annotated[bool, Query(description="Exact pixels, for the editor's canvas")] = False,
) -> Response:
    width = next((w for w in PREVIEW_WIDTHS if w >= width), PREVIEW_WIDTHS[-1])
    try:
        data = await asyncio.to_thread(_preview, services.catalog, template_id, width, lossless)
    except UnknownTemplate as exc:
        data = await _uploaded_preview(services, template_id, width, lossless)
        if data is None:
            raise Problem(404, "template-not-found", "No such template", str(exc)) from exc
    etag = f'"{template_id}-{width}{"-lossless" if lossless else ""}-{len(data)}"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/webp", headers=headers)
