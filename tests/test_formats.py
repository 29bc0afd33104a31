"""encode(): animated WebP and GIF keep frames and timing; presets keep their order."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageSequence

from domain.rendering.formats import PRESETS, encode
from domain.settings import ImageQuality


def _durations(im: Image.Image) -> list[int | None]:
    """Each frame's duration (the decoders set it when the frame is loaded)."""
    out = []
    for i in range(getattr(im, "n_frames", 1)):
        im.seek(i)
        im.load()
        out.append(im.info.get("duration"))
    return out


def _frames(count: int = 6) -> list[Image.Image]:
    out = []
    for k in range(count):
        im = Image.new("RGB", (96, 64), (20, 40 + 10 * k, 120))
        ImageDraw.Draw(im).ellipse((8 + 10 * k, 16, 28 + 10 * k, 36), fill=(240, 200, 40))
        out.append(im)
    return out


@pytest.mark.parametrize("quality", list(ImageQuality))
def test_animated_webp_keeps_frame_count_and_durations(quality: ImageQuality) -> None:
    frames = _frames()
    durations = [40, 60, 80, 100, 120, 140]
    out = encode(frames, durations, "webp", quality)
    im = Image.open(io.BytesIO(out.data))
    assert out.frames == 6 and getattr(im, "n_frames", 1) == 6
    assert _durations(im) == durations
    shown = Image.open(io.BytesIO(out.data))
    # libwebp leaves pixels that moved less than ~10 levels (q50) since the previous frame:
    # this background brightens 10 levels a frame, so at LOW it lags (16 levels by frame 6).
    limit = 20 if quality is ImageQuality.LOW else 6
    for src, got in zip(frames, ImageSequence.Iterator(shown), strict=True):
        diff = np.asarray(got.convert("RGB"), np.int16) - np.asarray(src, np.int16)
        assert np.abs(diff).mean() < limit


@pytest.mark.parametrize("quality", list(ImageQuality))
def test_animated_gif_keeps_frame_count_and_durations(quality: ImageQuality) -> None:
    frames = _frames()
    out = encode(frames, [70] * 6, "gif", quality, loop=0)
    im = Image.open(io.BytesIO(out.data))
    assert im.format == "GIF" and getattr(im, "n_frames", 1) == 6
    shown = [np.asarray(f.convert("RGB"), np.int16) for f in ImageSequence.Iterator(im)]
    for src, got in zip(frames, shown, strict=True):
        assert np.abs(got - np.asarray(src, np.int16)).mean() < 3
    assert _durations(im) == [70] * 6


def test_still_gif_is_one_frame() -> None:
    out = encode(_frames(1), [0], "gif", ImageQuality.HIGH)
    im = Image.open(io.BytesIO(out.data))
    assert getattr(im, "n_frames", 1) == 1 and im.size == (96, 64)


def test_presets_keep_their_order() -> None:
    order = [ImageQuality.LOW, ImageQuality.MEDIUM, ImageQuality.HIGH, ImageQuality.LOSSLESS]
    presets = [PRESETS[q] for q in order]
    for worse, better in itertools.pairwise(presets):
        assert worse.gif_colors <= better.gif_colors
        assert worse.gif_local_colors <= better.gif_local_colors
        assert worse.gif_tolerance >= better.gif_tolerance
        assert worse.webp_anim_quality <= better.webp_anim_quality
