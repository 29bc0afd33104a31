"""Filters on every frame, formats in and out, sizes from one decode."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from PIL import Image, ImageChops, ImageStat

from domain.rendering import InvalidOptions, RenderOptions, render_meme, render_upload
from domain.rendering.errors import ImageTooLarge, InvalidBox
from domain.rendering.filters import apply_filters, parse_filter, parse_filters


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _image(fmt: str, frames: int = 1, size: tuple[int, int] = (240, 160)) -> bytes:
    images = [Image.new("RGB", size, (40 + 10 * i, 120, 200 - 5 * i)) for i in range(frames)]
    for i, im in enumerate(images):
        im.paste((250, 250, 250), (10 + i * 5, 10, 60 + i * 5, 60))
    buf = io.BytesIO()
    if frames > 1:
        images[0].save(buf, fmt, save_all=True, append_images=images[1:], duration=90, loop=0)
    else:
        images[0].save(buf, fmt)
    return buf.getvalue()


BOX = [{"x": 0, "y": 100, "width": 240, "height": 60, "text": "caption"}]


@pytest.mark.parametrize("fmt_in", ["JPEG", "PNG", "GIF", "WEBP"])
@pytest.mark.parametrize("fmt_out", ["jpeg", "png", "gif", "webp"])
def test_static_formats_in_and_out(fmt_in: str, fmt_out: str) -> None:
    out = render_upload(_image(fmt_in), BOX, RenderOptions(format=fmt_out, sizes=("full",)))
    im = _open(out.variants["full"].data)
    assert im.format == fmt_out.upper() and im.size == (240, 160)


@pytest.mark.parametrize("fmt_in", ["GIF", "WEBP", "PNG"])
def test_animated_uploads_stay_animated(fmt_in: str) -> None:
    data = _image(fmt_in, frames=6)
    out = render_upload(data, BOX, RenderOptions(format="webp" if fmt_in == "WEBP" else "gif"))
    assert out.animated and out.frame_count == 6
    for variant in out.variants.values():
        im = Image.open(io.BytesIO(variant.data))
        assert im.n_frames == 6
        im.seek(2)
        im.load()
        assert im.info["duration"] == 90


def test_text_is_on_every_frame() -> None:
    out = render_upload(
        _image("GIF", frames=4),
        [{"x": 0, "y": 0, "width": 240, "height": 160, "text": "EVERY FRAME"}],
        RenderOptions(format="gif", sizes=("full",)),
    )
    im = Image.open(io.BytesIO(out.variants["full"].data))
    for i in range(4):
        im.seek(i)
        lo, hi = im.convert("L").getextrema()
        assert lo < 30 and hi > 230, i  # black outline and white fill present


def test_three_sizes_share_one_render() -> None:
    out = render_upload(
        _image("PNG", size=(1200, 800)),
        [{"x": 0, "y": 0, "width": 1200, "height": 200, "text": "sizes"}],
    )
    full, medium, thumb = (out.variants[k] for k in ("full", "medium", "thumb"))
    assert (full.width, full.height) == (1200, 800)
    assert max(medium.width, medium.height) <= 480 and medium.width > 240
    assert max(thumb.width, thumb.height) <= 160
    assert abs(medium.width / medium.height - 1.5) < 0.02


def test_grayscale_removes_colour() -> None:
    out = render_meme(
        "drake", ["a", "b"], RenderOptions(filters=("grayscale",), sizes=("thumb",), format="png")
    )
    im = _open(out.variants["thumb"].data).convert("RGB")
    r, g, b = im.split()
    assert r.tobytes() == g.tobytes() == b.tobytes()


def test_blur_reduces_detail_and_sharpen_increases_it() -> None:
    def detail(filters: tuple[str, ...]) -> float:
        out = render_meme(
            "classic",
            ["detail", "test"],
            RenderOptions(filters=filters, sizes=("full",), format="png"),
        )
        edges = (
            _open(out.variants["full"].data)
            .convert("L")
            .filter(__import__("PIL.ImageFilter", fromlist=["FIND_EDGES"]).FIND_EDGES)
        )
        return ImageStat.Stat(edges).mean[0]

    plain = detail(())
    assert detail(("blur:4",)) < plain * 0.7
    assert detail(("sharpen",)) > plain


def test_deepfry_saturates() -> None:
    def saturation(filters: tuple[str, ...]) -> float:
        out = render_meme(
            "drake", ["x", "y"], RenderOptions(filters=filters, sizes=("thumb",), format="png")
        )
        hsv = _open(out.variants["thumb"].data).convert("RGB").convert("HSV")
        return ImageStat.Stat(hsv.getchannel("S")).mean[0]

    assert saturation(("deepfry",)) > saturation(()) * 1.1


def test_geometry_filters() -> None:
    def size(filters: tuple[str, ...]) -> tuple[int, int]:
        out = render_meme("hot-take", ["a"], RenderOptions(filters=filters, sizes=("full",)))
        v = out.variants["full"]
        return v.width, v.height

    assert size(()) == (700, 500)
    assert size(("rotate:90",)) == (500, 700)
    assert size(("crop:10,20,300,200",)) == (300, 200)
    assert size(("flip:horizontal", "flip:vertical")) == (700, 500)


def test_flip_mirrors_pixels() -> None:
    opts = RenderOptions(sizes=("thumb",), format="png")
    plain = _open(render_meme("drake", [], opts).variants["thumb"].data).convert("RGB")
    flipped = _open(
        render_meme("drake", [], RenderOptions(sizes=("thumb",), format="png", filters=("flip",)))
        .variants["thumb"]
        .data
    ).convert("RGB")
    assert plain.transpose(Image.Transpose.FLIP_LEFT_RIGHT).tobytes() == flipped.tobytes()


def test_filters_apply_to_every_animation_frame() -> None:
    out = render_meme(
        "vibe-check", ["x"], RenderOptions(filters=("grayscale",), sizes=("thumb",), format="webp")
    )
    im = Image.open(io.BytesIO(out.variants["thumb"].data))
    assert im.n_frames == 17
    for i in (0, 8, 16):
        im.seek(i)
        rgb = im.convert("RGB")
        r, _, b = rgb.split()
        assert ImageStat.Stat(r).mean[0] == pytest.approx(ImageStat.Stat(b).mean[0], abs=3)


@pytest.mark.parametrize(
    "spec",
    [
        "posterise",
        "blur:0",
        "blur:x",
        "crop:1,2",
        "rotate",
        "flip:sideways",
        "edges:3",
        "deepfry:9",
        "sepia:2",
        "invert:-1",
        "contrast:0.5,1",
        "pixelate:0",
    ],
)
def test_bad_filters_are_refused(spec: str) -> None:
    with pytest.raises(InvalidOptions):
        parse_filter(spec)


def test_too_many_filters() -> None:
    with pytest.raises(InvalidOptions, match="at most"):
        parse_filters(["blur"] * 20)


def test_crop_outside_the_image_is_refused() -> None:
    with pytest.raises(InvalidOptions, match="outside"):
        render_meme("drake", [], RenderOptions(filters=("crop:5000,5000,10,10",)))


def test_colour_filters_follow_their_strength() -> None:
    im = Image.new("RGB", (40, 40), (200, 100, 50))
    im.paste((20, 220, 90), (0, 0, 20, 40))
    apply = lambda spec: apply_filters(im, parse_filters([spec]))  # noqa: E731
    assert apply("invert").getpixel((30, 5)) == (55, 155, 205)
    assert apply("invert:0").getpixel((30, 5)) == (200, 100, 50)
    r, g, b = apply("sepia").getpixel((30, 5))
    assert r > g > b  # brown
    assert apply("sepia:0.5").getpixel((30, 5)) != apply("sepia").getpixel((30, 5))
    gray = apply("grayscale:1").getpixel((30, 5))
    assert gray[0] == gray[1] == gray[2]
    spread = lambda x: max(x.getpixel((30, 5))) - min(x.getpixel((30, 5)))  # noqa: E731
    assert spread(apply("contrast:0.5")) > spread(im)
    blocks = apply("pixelate:20")
    assert blocks.getpixel((0, 0)) == blocks.getpixel((19, 19))


def _diff_rows(a: bytes, b: bytes) -> tuple[int, int]:
    """The first and last row where two renders differ."""
    box = ImageChops.difference(_open(a).convert("RGB"), _open(b).convert("RGB")).getbbox()
    assert box is not None, "the renders are identical"
    return box[1], box[3]


def test_placed_boxes_move_the_text() -> None:
    opts = RenderOptions(format="png", sizes=("full",))
    blank = render_meme("classic", ["", ""], opts).variants["full"].data
    width = _open(blank).width
    top = ((0, 0, width, 100), (0, 450, width, 100))
    bottom = ((0, 450, width, 100), (0, 0, width, 100))
    text = ["PLACED", ""]
    at_top = render_meme("classic", text, replace(opts, boxes=top)).variants["full"].data
    at_bottom = render_meme("classic", text, replace(opts, boxes=bottom)).variants["full"].data
    assert _diff_rows(blank, at_top)[1] <= 100
    assert _diff_rows(blank, at_bottom)[0] >= 450


def test_transform_applies_before_the_text_and_boxes_follow_it() -> None:
    opts = RenderOptions(
        format="png",
        sizes=("full",),
        transform=("rotate:90", "crop:0,0,300,200", "grayscale"),
        boxes=((0, 0, 300, 100), (0, 100, 300, 100)),
    )
    out = _open(render_meme("classic", ["TOP", "BOTTOM"], opts).variants["full"].data)
    assert out.size == (300, 200)
    with pytest.raises(InvalidBox, match="outside"):
        render_meme("classic", ["x"], replace(opts, boxes=((0, 0, 300, 100), (0, 250, 300, 50))))
    overhang = replace(opts, boxes=((0, 0, 300, 100), (0, 150, 301, 100)))
    assert render_meme("classic", ["x", "y"], overhang).variants["full"].width == 300
    with pytest.raises(InvalidBox, match="placements"):
        render_meme("classic", ["x"], replace(opts, boxes=((0, 0, 300, 100),)))


def test_a_chain_of_rotations_cannot_blow_up_memory() -> None:
    """Each 45-degree turn grows the image; eight would make a 600 px template ~9,600 px."""
    many = ("rotate:45",) * 8
    with pytest.raises(ImageTooLarge, match="pixels per frame"):
        render_meme("classic", ["x"], RenderOptions(transform=many, sizes=("thumb",)))
    with pytest.raises(ImageTooLarge, match="pixels per frame"):
        render_meme("vibe-check", ["x"], RenderOptions(filters=many[:5], sizes=("thumb",)))
