"""Render a meme: template (or upload) + captions -> encoded full, medium and thumb.

Module-level functions with picklable arguments and results, so the worker can
run them in a `ProcessPoolExecutor`; each process keeps its own caches of decoded
templates and fonts. Anything a caller could get wrong surfaces as a
`RenderError` with a reason; unexpected failures are wrapped too, so a bad
request can never take the worker down.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from domain.rendering.animation import check_frame_cap, gif_palette, normalise_durations
from domain.rendering.errors import (
    ImageTooLarge,
    InvalidBox,
    InvalidOptions,
    RenderError,
    TemplateNotFound,
)
from domain.rendering.filters import MAX_FILTERED_PIXELS, Filter, apply_filters, parse_filters
from domain.rendering.formats import PRESETS, encode, normalise_format
from domain.rendering.gif import FramePalettes
from domain.rendering.options import (
    SIZE_LIMITS,
    SIZES,
    EncodedImage,
    RenderedMeme,
    RenderOptions,
)
from domain.rendering.sizing import scale_box, shrink_full, shrink_variant
from domain.rendering.typesetting import TextLayer, typeset
from domain.rendering.validation import check_boxes, check_texts, place_boxes
from domain.settings import ImageQuality, get_settings
from domain.templates import TemplateCatalog, TextBox, UnknownTemplate
from domain.templates.frames import Frames


def render_meme(
    template_id: str, texts: Sequence[str], options: RenderOptions | None = None
) -> RenderedMeme:
    """Render `texts` into the template's boxes (texts[i] -> boxes[i])."""
    start = time.perf_counter()
    opts = options or RenderOptions()
    try:
        template = TemplateCatalog.default().get(template_id)
    except UnknownTemplate as exc:
        raise TemplateNotFound(str(exc)) from None

    def run() -> RenderedMeme:
        cleaned = check_texts(texts, template.boxes)  # refused before any pixel work
        frames, boxes = _laid_out(template.frames(), template.boxes, opts)
        return _render(frames, boxes, cleaned, opts, start)

    return _guarded(run)


def _laid_out(
    frames: Frames, boxes: Sequence[TextBox], opts: RenderOptions
) -> tuple[Frames, Sequence[TextBox]]:
    """The editor's layout: `opts.transform` on the frames, then `opts.boxes` placed on them."""
    if opts.transform:
        frames = _transformed(frames, parse_filters(opts.transform))
    if opts.boxes is not None:
        width, height = frames.source_size or frames.images[0].size
        boxes = place_boxes(boxes, opts.boxes, width, height)
    return frames, boxes


def _transformed(frames: Frames, filters: Sequence[Filter]) -> Frames:
    """The template's frames with `filters` applied, given in the template's pixels.

    Frames may be decoded smaller than the template (`source_size`): crops are scaled to the
    decoded pixels, and the result's `source_size` is stated back in template pixels.
    """
    first = frames.images[0]
    factor = first.width / (frames.source_size or first.size)[0]
    if factor != 1:
        filters = [
            Filter(f.name, tuple(a * factor for a in f.args)) if f.name == "crop" else f
            for f in filters
        ]
    per_frame = MAX_FILTERED_PIXELS // len(frames.images)
    images = [
        apply_filters(im if im.mode == "RGB" else im.convert("RGB"), filters, per_frame)
        for im in frames.images
    ]
    size = images[0].size
    source = (round(size[0] / factor), round(size[1] / factor)) if factor != 1 else None
    return Frames(images, frames.durations, frames.loop, source)


def render_upload(
    image_bytes: bytes,
    boxes: Sequence[TextBox | Mapping[str, Any]],
    options: RenderOptions | None = None,
    *,
    texts: Sequence[str] | None = None,
    content_type: str | None = None,
) -> RenderedMeme:
    """Render text onto an uploaded image with client-defined boxes.

    Boxes may be TextBox objects or dicts of TextBox fields plus an optional
    `text`; `texts`, if given, overrides those. `content_type` is checked against
    the file's real signature.
    """
    from domain.rendering.decode import decode

    start = time.perf_counter()
    opts = options or RenderOptions()

    def run() -> RenderedMeme:
        frames = decode(
            image_bytes,
            claimed_type=content_type,
            max_frames=opts.max_frames,
            target_side=SIZE_LIMITS["full"],
        )
        w, h = frames.source_size or frames.images[0].size
        parsed, box_texts = _parse_boxes(boxes, w, h)
        laid_frames, laid_boxes = _laid_out(frames, parsed, opts)
        cleaned = check_texts(list(texts) if texts is not None else box_texts, laid_boxes)
        return _render(laid_frames, laid_boxes, cleaned, opts, start)

    return _guarded(run)


def _guarded(run: Any) -> RenderedMeme:
    try:
        result: RenderedMeme = run()
        return result
    except RenderError:
        raise
    except MemoryError as exc:
        raise ImageTooLarge("rendering needs too much memory") from exc
    except Exception as exc:  # the worker must survive anything
        raise RenderError(f"internal rendering error: {type(exc).__name__}: {exc}") from exc


def _render(
    frames: Frames,
    boxes: Sequence[TextBox],
    texts: Sequence[str],
    opts: RenderOptions,
    start: float,
) -> RenderedMeme:
    """`texts` as `check_texts` cleaned them (upper-cased where the box says so)."""
    fmt, quality, sizes, filters = _resolve(opts, frames.animated)
    check_frame_cap(len(frames.images), opts.max_frames)
    images = frames.images if fmt != "jpeg" else frames.images[:1]
    # Shrink oversized inputs before drawing, so text is rasterised at output size.
    base = shrink_full(images, SIZE_LIMITS["full"])
    scale = base[0].width / (frames.source_size or images[0].size)[0]
    layers: list[TextLayer] = []
    warnings: list[str] = []
    if fmt == "jpeg" and frames.animated:
        warnings.append("JPEG cannot animate: the first frame was rendered")
    for i, (box, text) in enumerate(zip(boxes, texts, strict=False)):
        layer = typeset(scale_box(box, scale), text)
        if layer is not None:
            layers.append(layer)
            if layer.fitted.truncated:
                warnings.append(f"text {i + 1} did not fit box {box.name!r} and was shortened")
    per_frame = MAX_FILTERED_PIXELS // len(base)
    composed = [_compose(im, layers, filters, per_frame) for im in base]
    variants = {}
    palette = None
    frame_palettes = FramePalettes()  # built by the largest size, reused by the smaller ones
    if fmt == "gif":
        palette = gif_palette(composed, PRESETS[quality].gif_colors)
    durations = normalise_durations(frames.durations, len(composed))
    by_size: dict[tuple[int, int], EncodedImage] = {}
    # Largest first, each size reduced from the previous one: thumb from medium is 4x cheaper.
    source = composed
    for name in sorted(sizes, key=lambda n: -SIZE_LIMITS[n]):
        scaled = composed if name == "full" else shrink_variant(source, SIZE_LIMITS[name])
        source = scaled
        size = scaled[0].size
        if size not in by_size:  # e.g. a 480 px template's medium is its full size
            by_size[size] = encode(
                scaled,
                durations,
                fmt,
                quality,
                loop=frames.loop,
                palette=palette,
                frame_palettes=frame_palettes,
            )
        variants[name] = by_size[size]
    return RenderedMeme(
        variants={name: variants[name] for name in sizes},
        render_ms=(time.perf_counter() - start) * 1000,
        animated=len(composed) > 1,
        frame_count=len(composed),
        warnings=tuple(warnings),
    )


def _resolve(
    opts: RenderOptions, animated: bool
) -> tuple[str, ImageQuality, tuple[str, ...], list[Filter]]:
    fmt = normalise_format(opts.format) if opts.format else ("gif" if animated else "jpeg")
    try:
        quality = ImageQuality(opts.quality or get_settings().image_quality)
    except ValueError as exc:
        raise InvalidOptions(f"unknown quality {opts.quality!r}") from exc
    sizes = tuple(dict.fromkeys(opts.sizes))
    bad = [s for s in sizes if s not in SIZES]
    if bad or not sizes:
        raise InvalidOptions(f"sizes must be a non-empty subset of {', '.join(SIZES)}")
    if not 1 <= opts.max_frames <= 1000:
        raise InvalidOptions("max_frames must be in 1..1000")
    return fmt, quality, sizes, parse_filters(opts.filters)


def _compose(
    frame: Image.Image, layers: Sequence[TextLayer], filters: Sequence[Filter], max_pixels: int
) -> Image.Image:
    im = frame.copy() if frame.mode == "RGB" else frame.convert("RGB")
    for layer in layers:
        layer.apply(im)
    return apply_filters(im, filters, max_pixels) if filters else im


def _parse_boxes(
    boxes: Sequence[TextBox | Mapping[str, Any]], width: int, height: int
) -> tuple[list[TextBox], list[Any]]:
    """An upload's boxes (dicts of TextBox fields, each with an optional `text`), checked by
    `domain.rendering.validation`, the validator the upload route used."""
    if isinstance(boxes, (str, bytes)) or not isinstance(boxes, Sequence):
        raise InvalidBox("boxes must be a list")
    texts = [raw.get("text") or "" if isinstance(raw, Mapping) else "" for raw in boxes]
    plain = [
        {k: v for k, v in raw.items() if k != "text"} if isinstance(raw, Mapping) else raw
        for raw in boxes
    ]
    return check_boxes(plain, width, height), texts
