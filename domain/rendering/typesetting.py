"""Turn one caption and its TextBox into paint operations for the frames.

Text is rasterised once into 8-bit masks (glyphs; glyphs + outline) and coloured
at paste time: solid colours paste straight onto RGB frames with the mask, which
is cheaper than building RGBA layers, keeps edges clean, and lets the same masks
serve every frame of an animation. Gradient fill, shadow and emoji become extra
operations in the same list.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from domain.rendering.effects import colour, shadow_mask, vertical_gradient
from domain.rendering.fitting import FittedText, fit_text
from domain.rendering.fonts import family_path
from domain.rendering.glyphs import ColourPatch, draw_runs
from domain.rendering.runs import split_runs, text_width
from domain.templates.model import TextBox

RGB = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Paint:
    """Paste `source` (a colour or an image) at (x, y) through `mask`."""

    source: RGB | Image.Image
    mask: Image.Image
    x: int
    y: int

    def apply(self, frame: Image.Image) -> None:
        if isinstance(self.source, tuple):
            w, h = self.mask.size
            frame.paste(self.source, (self.x, self.y, self.x + w, self.y + h), self.mask)
        else:
            frame.paste(self.source, (self.x, self.y), self.mask)


@dataclass(frozen=True)
class TextLayer:
    """Everything needed to put one caption on any frame, in paint order."""

    paints: tuple[Paint, ...]
    fitted: FittedText

    def apply(self, frame: Image.Image) -> None:
        for p in self.paints:
            p.apply(frame)


def typeset(box: TextBox, text: str) -> TextLayer | None:
    """Fit and rasterise `text` for `box`; None when there is nothing to draw."""
    if not text.strip():
        return None
    path = family_path(box.font)
    outlined = box.outline_color is not None
    fitted = fit_text(
        text,
        path,
        box.width,
        box.height,
        max_size=box.max_font_size,
        min_size=box.min_font_size,
        max_lines=box.max_lines,
        outlined=outlined,
    )
    fill_mask, stroke_mask, patches = _rasterise(fitted, path, box, outlined)
    base_mask = stroke_mask if stroke_mask is not None else fill_mask
    layers: list[tuple[RGB | Image.Image, Image.Image]] = []
    if box.shadow_color:
        layers.append((colour(box.shadow_color), shadow_mask(base_mask, fitted.size)))
    if stroke_mask is not None and box.outline_color:
        layers.append((colour(box.outline_color), stroke_mask))
    if box.gradient:
        top, bottom = colour(box.gradient[0]), colour(box.gradient[1])
        layers.append((_gradient_for(fill_mask, top, bottom), fill_mask))
    else:
        layers.append((colour(box.color), fill_mask))
    for patch in patches:
        layers.append(_patch_layer(patch, fill_mask.size))

    x, y = box.x, box.y
    if box.rotation:
        rotated: list[tuple[RGB | Image.Image, Image.Image]] = []
        for source, mask in layers:
            mask = mask.rotate(box.rotation, resample=Image.Resampling.BICUBIC, expand=True)
            if isinstance(source, Image.Image):
                source = source.rotate(box.rotation, resample=Image.Resampling.BICUBIC, expand=True)
            rotated.append((source, mask))
        w, h = rotated[0][1].size
        x = round(box.x + box.width / 2 - w / 2)
        y = round(box.y + box.height / 2 - h / 2)
        layers = rotated
    paints = []
    for source, mask in layers:
        bbox = mask.getbbox()
        if bbox is None:
            continue
        # Keep only the inked part: pastes then touch just the text's pixels.
        mask = mask.crop(bbox)
        if isinstance(source, Image.Image):
            source = source.crop(bbox)
        paints.append(Paint(source, mask, x + bbox[0], y + bbox[1]))
    return TextLayer(tuple(paints), fitted)


def _rasterise(
    fitted: FittedText, path: str, box: TextBox, outlined: bool
) -> tuple[Image.Image, Image.Image | None, list[ColourPatch]]:
    size = (box.width, box.height)
    fill = Image.new("L", size, 0)
    stroke = Image.new("L", size, 0) if outlined and fitted.stroke else None
    if box.valign == "top":
        top = 0.0
    elif box.valign == "bottom":
        top = box.height - fitted.block_height
    else:
        top = (box.height - fitted.block_height) / 2
    patches: list[ColourPatch] = []
    for i, line in enumerate(fitted.lines):
        width = text_width(line, path, fitted.size)
        if box.align == "left":
            x = float(fitted.stroke)
        elif box.align == "right":
            x = box.width - fitted.stroke - width
        else:
            x = (box.width - width) / 2
        baseline = top + fitted.ascent + i * fitted.line_advance
        patches += draw_runs(
            fill, stroke, split_runs(line, path), fitted.size, fitted.stroke, x, baseline
        )
    return fill, stroke, patches


def _gradient_for(mask: Image.Image, top: RGB, bottom: RGB) -> Image.Image:
    """A vertical gradient spanning the inked rows, so short text still shows both ends."""
    bbox = mask.getbbox() or (0, 0, *mask.size)
    paint = Image.new("RGB", mask.size, top)
    paint.paste(
        vertical_gradient((mask.width, max(1, bbox[3] - bbox[1])), top, bottom), (0, bbox[1])
    )
    if bbox[3] < mask.height:
        paint.paste(bottom, (0, bbox[3], mask.width, mask.height))
    return paint


def _patch_layer(patch: ColourPatch, size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    canvas.paste(patch.image, (patch.x, patch.y))  # empty canvas: copy, do not blend
    return canvas.convert("RGB"), canvas.getchannel("A")
