"""The public rendering API: every template renders, decodes and respects options."""

from __future__ import annotations

import io
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest
from PIL import Image

from domain.rendering import (
    EncodedImage,
    InvalidOptions,
    InvalidText,
    RenderedMeme,
    RenderError,
    RenderOptions,
    TemplateNotFound,
    render_meme,
)
from domain.settings import ImageQuality
from domain.templates import TemplateCatalog


def _open(variant: EncodedImage) -> Image.Image:
    im = Image.open(io.BytesIO(variant.data))
    im.load()
    return im


@pytest.mark.parametrize("template", [t.id for t in TemplateCatalog.default().all()])
def test_every_template_renders_and_decodes(template: str) -> None:
    t = TemplateCatalog.default().get(template)
    texts = [f"caption number {i + 1}" for i in range(len(t.boxes))]
    result = render_meme(template, texts)
    assert isinstance(result, RenderedMeme)
    assert set(result.variants) == {"full", "medium", "thumb"}
    full = result.variants["full"]
    assert (full.width, full.height) == (t.width, t.height)
    expected = "gif" if t.animated else "jpeg"
    for name, v in result.variants.items():
        im = _open(v)
        assert im.size == (v.width, v.height), name
        assert v.format == expected and v.media_type == f"image/{expected}"
        assert Image.open(io.BytesIO(v.data)).format == expected.upper()
    assert 80 <= max(result.variants["thumb"].width, result.variants["thumb"].height) <= 160
    assert result.render_ms > 0


def test_text_changes_the_pixels() -> None:
    blank = _open(render_meme("classic", [], RenderOptions(sizes=("full",))).variants["full"])
    texted = _open(
        render_meme("classic", ["HELLO", "WORLD"], RenderOptions(sizes=("full",))).variants["full"]
    )
    top_blank = blank.crop((100, 20, 500, 120)).convert("L")
    top_text = texted.crop((100, 20, 500, 120)).convert("L")
    # Impact style: white fill and black outline both appear where the caption is.
    lo, hi = top_text.getextrema()
    assert hi > 235 and lo < 30
    assert top_blank.tobytes() != top_text.tobytes()


def test_fewer_texts_than_boxes_is_fine_and_more_is_an_error() -> None:
    render_meme("drake", ["only the first"], RenderOptions(sizes=("thumb",)))
    with pytest.raises(InvalidText, match="3 texts"):
        render_meme("drake", ["a", "b", "c"])


def test_unknown_template_is_a_render_error() -> None:
    with pytest.raises(TemplateNotFound) as info:
        render_meme("nope", ["x"])
    assert isinstance(info.value, RenderError)
    assert "nope" in str(info.value)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "gif"])
def test_every_output_format(fmt: str) -> None:
    result = render_meme("drake", ["a", "b"], RenderOptions(format=fmt, sizes=("medium",)))
    v = result.variants["medium"]
    assert Image.open(io.BytesIO(v.data)).format == fmt.upper()
    assert v.media_type == f"image/{fmt}"


@pytest.mark.parametrize("fmt", ["gif", "webp", "png"])
def test_animated_formats_keep_every_frame_and_timing(fmt: str) -> None:
    opts = RenderOptions(format=fmt, sizes=("thumb",))
    result = render_meme("vibe-check", ["top", "bottom"], opts)
    im = Image.open(io.BytesIO(result.variants["thumb"].data))
    assert getattr(im, "n_frames", 1) == 17
    im.seek(1)
    im.load()
    assert im.info.get("duration") == 70
    assert result.animated and result.frame_count == 17


def test_jpeg_of_an_animation_is_its_first_frame() -> None:
    result = render_meme("vibe-check", ["a"], RenderOptions(format="jpeg", sizes=("thumb",)))
    assert result.variants["thumb"].frames == 1 and not result.animated


def test_quality_presets_change_size() -> None:
    sizes = {
        q: len(
            render_meme("classic", ["a", "b"], RenderOptions(quality=q, sizes=("full",)))
            .variants["full"]
            .data
        )
        for q in (ImageQuality.LOW, ImageQuality.HIGH, ImageQuality.LOSSLESS)
    }
    assert sizes[ImageQuality.LOW] < sizes[ImageQuality.HIGH] < sizes[ImageQuality.LOSSLESS]


def test_bad_options_are_render_errors() -> None:
    with pytest.raises(InvalidOptions, match="format"):
        render_meme("drake", ["a"], RenderOptions(format="bmp"))
    with pytest.raises(InvalidOptions, match="sizes"):
        render_meme("drake", ["a"], RenderOptions(sizes=("huge",)))
    with pytest.raises(InvalidOptions, match="filter"):
        render_meme("drake", ["a"], RenderOptions(filters=("sepia-ish",)))


def test_results_pickle() -> None:
    result = render_meme("drake", ["a", "b"], RenderOptions(sizes=("thumb",)))
    clone = pickle.loads(pickle.dumps(result))
    assert clone.variants["thumb"].data == result.variants["thumb"].data
    err = pickle.loads(pickle.dumps(InvalidText("why")))
    assert isinstance(err, InvalidText) and err.reason == "why"


def test_runs_in_a_process_pool() -> None:
    with ProcessPoolExecutor(max_workers=2) as pool:
        opts = RenderOptions(sizes=("thumb",))
        futures = [pool.submit(render_meme, "drake", ["pool", str(i)], opts) for i in range(4)]
        results = [f.result(timeout=60) for f in futures]
        bad = pool.submit(render_meme, "missing", ["x"])
        with pytest.raises(TemplateNotFound):
            bad.result(timeout=60)
    assert all(r.variants["thumb"].data for r in results)


def test_template_cache_is_bounded_by_cache_size_mb() -> None:
    from domain.settings import get_settings
    from domain.templates.frames import TEMPLATE_CACHE_SHARE, template_cache

    cache = template_cache()
    assert cache.capacity == int(get_settings().cache_size_mb * 1024 * 1024 * TEMPLATE_CACHE_SHARE)
    for t in TemplateCatalog.default().all():
        t.frames()
    assert 0 < cache.size <= cache.capacity


def test_big_upload_keeps_box_positions_in_original_pixels() -> None:
    """A 4000 px JPEG is decoded at reduced scale; boxes still land where asked."""
    big = Image.new("RGB", (4000, 3000), (90, 90, 90))
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=85)
    from domain.rendering import render_upload

    out = render_upload(
        buf.getvalue(),
        [{"x": 2000, "y": 1500, "width": 2000, "height": 1500, "text": "corner"}],
        RenderOptions(sizes=("full",), format="png"),
    )
    full = out.variants["full"]
    assert max(full.width, full.height) <= 1280 and full.width >= 960
    im = _open(full).convert("L")
    inked = im.point(lambda v: 255 if abs(v - 90) > 40 else 0).getbbox()
    assert inked is not None
    assert inked[0] >= full.width // 2 - 2 and inked[1] >= full.height // 2 - 2
