"""Animated GIF writer: frame differencing and palettes chosen by measurement.

Every frame after the first is only the rectangle that changed, and inside it every pixel
whose source colour has not moved is the transparent index: disposal 1 keeps the picture
underneath, and LZW turns those pixels into long cheap runs. The animation shares one
palette unless measurement on a few frames shows the frames' own palettes fit markedly
better (colours that drift, like a hue cycle); then each frame gets a local table built from
the pixels it redraws. Pillow does the LZW coding (`Image.tobytes("gif", ...)`, with the
smallest code size the table allows); the container around it is written here.

Where the CPU goes (17 frames 480x480, per-frame palettes): Pillow's LZW ~1/3, mapping to a
fresh palette ~1/4 (Pillow builds its nearest-colour cache per palette; a numpy lookup table
was 4x slower), the octree ~1/8; change masks work on packed uint32 pixels in numpy.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from domain.rendering.animation import MAX_COLORS, gif_palette

#: GIF delays are in hundredths of a second.
_CS_MS = 10
#: Disposal 1: leave the frame in place; the next one draws over it.
_KEEP = 1


@dataclass(frozen=True, slots=True)
class GifPolicy:
    """How hard a preset squeezes: palette size and how far a source pixel may drift unseen."""

    colors: int  # entries per palette, the transparent one included (<= 256)
    #: A pixel is redrawn once its source colour moved more than this (largest channel
    #: difference) from the colour it was last drawn from; 0 redraws every change.
    tolerance: int = 0
    #: Frames get palettes of their own when the shared one would add more than this mean
    #: error (largest channel difference, in levels) to a sampled frame.
    local_gain: float = 2.0
    #: Entries per frame-own palette (transparency included). It is built from the pixels
    #: the frame redraws only, so it needs fewer colours than a whole-frame one for the
    #: same fidelity, and fewer colours cost fewer bytes.
    local_colors: int | None = None  # None: `colors`


@dataclass(slots=True)
class FramePalettes:
    """What one animation's sizes share: whether frames need palettes of their own, and
    those palettes. The largest size builds them; smaller sizes (the same frames scaled)
    reuse them, skipping the octree and Pillow's nearest-colour cache, which a palette
    keeps once built."""

    local: bool | None = None
    own: dict[int, Image.Image] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Frame:
    indices: Image.Image  # P or L image of the frame's rectangle: the colour indices
    x: int
    y: int
    table: bytes | None  # local colour table; None: the global one
    bits: int
    transparent: int | None
    delay_cs: int


def encode_gif(
    frames: Sequence[Image.Image],
    durations: Sequence[int],
    *,
    loop: int,
    policy: GifPolicy,
    palette: Image.Image | None = None,
    shared: FramePalettes | None = None,
) -> bytes:
    """RGB frames -> GIF bytes; `palette` (P image, <= 255 colours) is the shared palette,
    `shared` the frame palettes a larger size of the same frames left (filled if empty)."""
    rgb = [f if f.mode == "RGB" else f.convert("RGB") for f in frames]
    if palette is None or _palette_size(palette) > MAX_COLORS:
        palette = gif_palette(rgb, policy.colors)
    shared_n = _palette_size(palette)
    shared = FramePalettes() if shared is None else shared
    if shared.local is None:
        shared.local = len(rgb) > 1 and _shared_misfits(rgb, palette, policy)
    local = shared.local
    out: list[_Frame] = []
    drawn = _packed(rgb[0])  # the source colours the picture on screen was quantised from
    for i, (src, ms) in enumerate(zip(rgb, durations, strict=True)):
        delay = max(0, round(ms / _CS_MS))
        if i == 0:
            box, mask = (0, 0, *src.size), None
            now = drawn
            drawn = drawn.copy() if policy.tolerance else drawn
        else:
            now = _packed(src)
            changed = _changed(now, drawn, policy.tolerance)
            box = _bbox(changed)
            if box is None:  # nothing moved: a one-pixel transparent frame keeps the timing
                dot = Image.new("L", (1, 1), shared_n)
                out.append(_Frame(dot, 0, 0, None, _bits(shared_n), shared_n, delay))
                continue
            x0, y0, x1, y1 = box
            mask = changed[y0:y1, x0:x1]
            if policy.tolerance == 0:
                drawn = now  # every pixel that differs is redrawn: the screen is `src`
            else:
                np.copyto(drawn[y0:y1, x0:x1], now[y0:y1, x0:x1], where=mask)
        region = src if box == (0, 0, *src.size) else src.crop(box)
        pal = palette
        if local and i in shared.own:
            pal = shared.own[i]
        elif local:
            x0, y0, x1, y1 = box
            grid = np.s_[y0:y1:_STRIDE, x0:x1:_STRIDE]
            redrawn = now[grid] if mask is None else now[grid][mask[::_STRIDE, ::_STRIDE]]
            pal = shared.own[i] = _sample_palette(
                redrawn, (policy.local_colors or policy.colors) - 1
            )
        n = _palette_size(pal)
        indices = region.quantize(palette=pal, dither=Image.Dither.NONE)
        transparent = None
        if mask is not None and not mask.all():  # some pixels in the rectangle still look right
            transparent = n
            indices = Image.fromarray(np.where(mask, np.asarray(indices), np.uint8(n)))
        table = None if pal is palette else _table(pal, n)
        out.append(_Frame(indices, box[0], box[1], table, _bits(n), transparent, delay))
    return _container(rgb[0].size, _table(palette, shared_n), _bits(shared_n), out, loop)


def _shared_misfits(frames: Sequence[Image.Image], shared: Image.Image, policy: GifPolicy) -> bool:
    """Whether frames need palettes of their own: measured on up to three of them.

    The probes lie halfway between the frames `gif_palette` samples, where a drift in colour
    is furthest from what the shared palette saw. The octree that builds a frame's own
    palette also counts its pixels per colour; the shared palette's extra error is how far
    each of those colours lies from its nearest shared colour (largest channel difference),
    weighted by its count.
    """
    shared_rgb = _rgb(shared)
    step = max(1, len(frames) // 4)
    for i in sorted({min(len(frames) - 1, step // 2 + j * step) for j in range(3)}):
        own = _own_palette(frames[i], policy.colors - 1)
        own_rgb = _rgb(own)
        counts = np.zeros(len(own_rgb), dtype=np.float32)
        for count, index in own.getcolors(256) or ():
            if index < len(counts):
                counts[index] = count
        gap = np.abs(own_rgb[:, None, :] - shared_rgb[None, :, :]).max(axis=2).min(axis=1)
        if float(counts @ gap) / max(1.0, float(counts.sum())) > policy.local_gain:
            return True
    return False


#: A frame-own palette is built from every _STRIDE-th pixel of every _STRIDE-th row.
_STRIDE = 3


def _sample_palette(pixels: np.ndarray, colors: int) -> Image.Image:
    """An octree palette for packed RGBX pixels (any shape): the colours a frame redraws."""
    flat = np.ascontiguousarray(pixels).reshape(-1)
    row = Image.frombuffer("RGBX", (max(1, flat.size), 1), flat.tobytes(), "raw", "RGBX", 0, 1)
    colors = max(2, min(colors, MAX_COLORS))
    return row.convert("RGB").quantize(colors, method=Image.Quantize.FASTOCTREE)


def _own_palette(region: Image.Image, colors: int) -> Image.Image:
    """A whole frame's palette, for the probes (octree on a half-size copy: cheap, and close)."""
    small = region.reduce(2) if min(region.size) >= 16 else region
    return small.quantize(max(2, min(colors, MAX_COLORS)), method=Image.Quantize.FASTOCTREE)


def _packed(im: Image.Image) -> np.ndarray:
    """An RGB frame as one uint32 per pixel (RGBX), so "did it change" is one comparison."""
    return np.asarray(im.convert("RGBX")).view(np.uint32)[..., 0]


def _changed(now: np.ndarray, drawn: np.ndarray, tolerance: int) -> np.ndarray:
    """True where any channel of `now` moved more than `tolerance` from `drawn`."""
    if tolerance == 0:
        return now != drawn
    rgb_now = now[..., None].view(np.uint8)[..., :3].astype(np.int16)
    rgb_drawn = drawn[..., None].view(np.uint8)[..., :3].astype(np.int16)
    return (np.abs(rgb_now - rgb_drawn) > tolerance).any(axis=2)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the True pixels, or None when there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _rgb(pal: Image.Image) -> np.ndarray:
    return np.asarray(pal.getpalette() or [0, 0, 0], dtype=np.float32).reshape(-1, 3)


def _palette_size(pal: Image.Image) -> int:
    return len(pal.getpalette() or ()) // 3


def _bits(n: int) -> int:
    """Colour-table bits for n colours plus the transparent index."""
    return max(1, n.bit_length())


def _table(pal: Image.Image, n: int) -> bytes:
    raw = bytes((pal.getpalette() or [])[: 3 * n])
    return raw + b"\0" * (3 * (1 << _bits(n)) - len(raw))


def _container(
    size: tuple[int, int], gct: bytes, gbits: int, frames: Sequence[_Frame], loop: int
) -> bytes:
    """GIF89a: screen, global table, loop extension, then per frame its control extension
    (delay, disposal 1, transparent index), descriptor, local table and LZW data."""
    w, h = size
    parts = [
        b"GIF89a",
        struct.pack("<HHBBB", w, h, 0x80 | 0x70 | (gbits - 1), 0, 0),
        gct,
        b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", loop) + b"\0",
    ]
    for f in frames:
        flags = (_KEEP << 2) | (1 if f.transparent is not None else 0)
        parts.append(b"!\xf9\x04" + struct.pack("<BHB", flags, f.delay_cs, f.transparent or 0))
        parts.append(b"\0")
        fw, fh = f.indices.size
        local = 0 if f.table is None else 0x80 | (f.bits - 1)
        parts.append(b"," + struct.pack("<HHHHB", f.x, f.y, fw, fh, local))
        if f.table is not None:
            parts.append(f.table)
        code_bits = max(2, f.bits if f.table is not None else gbits)
        parts.append(bytes([code_bits]))
        parts.append(f.indices.tobytes("gif", f.indices.mode, code_bits))
        parts.append(b"\0")
    parts.append(b";")
    return b"".join(parts)
