"""The GIF writer: differenced frames decode to the source, static pixels cost nothing."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageSequence

from domain.rendering.animation import gif_palette
from domain.rendering.gif import FramePalettes, GifPolicy, encode_gif

POLICY = GifPolicy(colors=80)


def _decoded(data: bytes) -> list[np.ndarray]:
    im = Image.open(io.BytesIO(data))
    return [np.asarray(f.convert("RGB"), dtype=np.int16) for f in ImageSequence.Iterator(im)]


def _raw_frames(data: bytes) -> list[tuple[int, int, int, int, int, int | None]]:
    """(x, y, w, h, disposal, transparent index) of every image block, read from the bytes."""
    out = []
    i = 13 + (3 * (2 << (data[10] & 7)) if data[10] & 0x80 else 0)
    disposal, transparent = 0, None
    while data[i] != 0x3B:
        if data[i] == 0x21:
            if data[i + 1] == 0xF9:
                disposal = (data[i + 3] >> 2) & 7
                transparent = data[i + 6] if data[i + 3] & 1 else None
            i += 2
            while data[i]:
                i += data[i] + 1
            i += 1
        else:
            x, y, w, h = (int.from_bytes(data[i + k : i + k + 2], "little") for k in (1, 3, 5, 7))
            flags = data[i + 9]
            i += 10 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0) + 1
            while data[i]:
                i += data[i] + 1
            i += 1
            out.append((x, y, w, h, disposal, transparent))
    return out


def _scene(ball_x: int, *, hue: int = 0) -> Image.Image:
    im = Image.new("RGB", (120, 80), (30 + hue, 60, 140 - hue // 2))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 60, 119, 79), fill=(40, 140, 60))
    draw.text((4, 4), "static", fill=(255, 255, 255))
    draw.ellipse((ball_x, 20, ball_x + 16, 36), fill=(230, 80, 30))
    return im


def _palette_error(frames: list[Image.Image]) -> float:
    """Worst pixel error of mapping the frames to their own shared palette (the floor)."""
    pal = gif_palette(frames, POLICY.colors)
    worst = 0
    for f in frames:
        mapped = f.quantize(palette=pal, dither=Image.Dither.NONE).convert("RGB")
        diff = np.abs(np.asarray(mapped, np.int16) - np.asarray(f, np.int16))
        worst = max(worst, int(diff.max()))
    return worst


def test_differenced_frames_decode_to_the_source_within_the_palette_error() -> None:
    frames = [_scene(x) for x in (10, 30, 50, 70, 50, 30)]
    data = encode_gif(frames, [70] * len(frames), loop=0, policy=POLICY)
    shown = _decoded(data)
    assert len(shown) == len(frames)
    limit = _palette_error(frames) + 1
    for src, got in zip(frames, shown, strict=True):
        diff = np.abs(got - np.asarray(src, np.int16))
        assert diff.max() <= limit
        assert diff.mean() < 2.0


def test_later_frames_are_the_changed_rectangle_kept_over_the_previous_one() -> None:
    frames = [_scene(x) for x in (10, 30, 50)]
    data = encode_gif(frames, [70, 70, 70], loop=0, policy=POLICY)
    blocks = _raw_frames(data)
    assert blocks[0][:4] == (0, 0, 120, 80)
    for x, y, w, h, disposal, transparent in blocks[1:]:
        assert disposal == 1  # keep the previous picture underneath
        assert transparent is not None
        # only the ball's path changes: rows 20..36, columns 10..66
        assert y >= 20 and y + h <= 37 and w < 120 and x >= 10


def test_a_frame_that_reverts_a_region_is_displayed_right() -> None:
    a, b = _scene(10), _scene(70)
    frames = [a, b, a]
    data = encode_gif(frames, [70, 70, 70], loop=0, policy=POLICY)
    shown = _decoded(data)
    limit = _palette_error(frames) + 1
    assert np.abs(shown[2] - np.asarray(a, np.int16)).max() <= limit
    assert np.abs(shown[2] - shown[0]).max() <= limit
    # the ball really left the right-hand spot in the last frame
    assert np.abs(shown[1][28, 78] - shown[2][28, 78]).max() > 50


def test_a_static_region_costs_nothing_in_later_frames() -> None:
    still = _scene(10)
    moving = [_scene(10)] + [_scene(10) for _ in range(5)]
    for i, im in enumerate(moving[1:], start=1):
        ImageDraw.Draw(im).rectangle((100, 0, 119, 10), fill=(20 * i, 0, 0))
    data = encode_gif(moving, [70] * 6, loop=0, policy=POLICY)
    for x, y, w, h, _, _ in _raw_frames(data)[1:]:
        assert (x, y, w, h) == (100, 0, 20, 11)  # only the corner that changed
    frozen = encode_gif([still] * 6, [70] * 6, loop=0, policy=POLICY)
    blocks = _raw_frames(frozen)
    assert len(blocks) == 6 and all(b[2:4] == (1, 1) for b in blocks[1:])
    one = encode_gif([still], [70], loop=0, policy=POLICY)
    assert len(frozen) - len(one) < 5 * 30  # a few bytes per unchanged frame


def test_drifting_colours_get_palettes_of_their_own() -> None:
    frames = [_scene(10 + 8 * k, hue=12 * k) for k in range(8)]
    data = encode_gif(frames, [50] * 8, loop=0, policy=POLICY)
    shown = _decoded(data)
    for src, got in zip(frames, shown, strict=True):
        assert np.abs(got - np.asarray(src, np.int16)).mean() < 2.0
    assert Image.open(io.BytesIO(data)).info.get("duration") == 50


def test_a_smaller_size_reuses_the_frame_palettes_of_the_larger_one() -> None:
    frames = [_scene(10 + 8 * k, hue=12 * k) for k in range(8)]
    shared = FramePalettes()
    encode_gif(frames, [50] * 8, loop=0, policy=POLICY, shared=shared)
    assert shared.local is True and sorted(shared.own) == list(range(8))
    built = dict(shared.own)
    small = [f.reduce(2) for f in frames]
    data = encode_gif(small, [50] * 8, loop=0, policy=POLICY, shared=shared)
    assert shared.own == built and all(shared.own[i] is built[i] for i in built)
    for src, got in zip(small, _decoded(data), strict=True):
        assert np.abs(got - np.asarray(src, np.int16)).mean() < 2.0
    still = FramePalettes()
    encode_gif([_scene(x) for x in (10, 30)], [50, 50], loop=0, policy=POLICY, shared=still)
    assert still.local is False and not still.own  # a shared palette: nothing to carry


def test_timing_loop_and_tolerance() -> None:
    frames = [_scene(x) for x in (10, 40)]
    data = encode_gif(frames, [120, 30], loop=3, policy=GifPolicy(colors=32, tolerance=6))
    im = Image.open(io.BytesIO(data))
    assert im.info.get("loop") == 3
    durations = []
    for f in ImageSequence.Iterator(im):
        durations.append(f.info.get("duration"))
    assert durations == [120, 30]
