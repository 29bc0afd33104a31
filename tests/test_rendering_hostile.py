"""Hostile input: every bad image or text ends in a specific RenderError, quickly."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from PIL import Image

from domain.rendering import (
    CorruptImage,
    ImageTooLarge,
    InvalidBox,
    InvalidText,
    RenderError,
    RenderOptions,
    TooManyFrames,
    UnsupportedImage,
    render_meme,
    render_upload,
)
from domain.rendering.decode import MAX_INPUT_BYTES, decode

BOX = [{"x": 0, "y": 0, "width": 60, "height": 30, "text": "hi"}]


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG that claims `width` x `height` with a tiny payload: a bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _jpeg(size: tuple[int, int] = (200, 120)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def _gif(frames: int, size: tuple[int, int] = (64, 64)) -> bytes:
    images = []
    for i in range(frames):
        im = Image.new("RGB", size, (i % 256, (i * 7) % 256, (i * 13) % 256))
        im.putpixel((i % size[0], (i // size[0]) % size[1]), (255, 255, 255))
        images.append(im.convert("P", palette=Image.Palette.ADAPTIVE))
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=40, loop=0)
    return buf.getvalue()


@pytest.mark.parametrize("side", [30_000, 10_000])
def test_decompression_bomb_is_refused_before_decoding(side: int) -> None:
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="pixels"):
        render_upload(_png_header_only(side, side), BOX)
    assert time.perf_counter() - started < 1.0
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS <= 100_000_000


def test_thousands_of_frames_are_refused_fast() -> None:
    data = _gif(5000, (16, 16))
    assert Image.open(io.BytesIO(data)).n_frames == 5000
    started = time.perf_counter()
    with pytest.raises(TooManyFrames, match="120 frames"):
        render_upload(data, [{"x": 0, "y": 0, "width": 16, "height": 8, "text": "x"}])
    assert time.perf_counter() - started < 2.0


def test_frame_cap_is_configurable() -> None:
    data = _gif(30)
    box = [{"x": 0, "y": 0, "width": 64, "height": 20, "text": "cap"}]
    with pytest.raises(TooManyFrames):
        render_upload(data, box, RenderOptions(max_frames=10))
    ok = render_upload(data, box, RenderOptions(max_frames=30, sizes=("thumb",)))
    assert ok.frame_count == 30


@pytest.mark.parametrize("cut", [0.5, 0.1])
def test_truncated_files_are_corrupt(cut: float) -> None:
    data = _jpeg()
    with pytest.raises(CorruptImage, match=r"truncated|corrupt"):
        render_upload(data[: int(len(data) * cut)], BOX)


def test_corrupt_body_with_valid_magic() -> None:
    data = bytearray(_jpeg())
    data[200:600] = b"\x00" * 400
    data = data[:700]
    with pytest.raises(CorruptImage):
        render_upload(bytes(data), BOX)


def test_wrong_magic_bytes() -> None:
    with pytest.raises(UnsupportedImage, match="signature"):
        render_upload(b"<svg xmlns='http://www.w3.org/2000/svg'/>", BOX)
    with pytest.raises(UnsupportedImage):
        render_upload(b"BM" + b"\x00" * 100, BOX)


def test_content_must_match_claimed_type() -> None:
    with pytest.raises(UnsupportedImage, match="declared"):
        render_upload(_jpeg(), BOX, content_type="image/png")
    with pytest.raises(UnsupportedImage, match="content type"):
        render_upload(_jpeg(), BOX, content_type="application/pdf")
    assert render_upload(_jpeg(), BOX, content_type="image/jpeg").variants


def test_empty_and_oversized_payloads() -> None:
    with pytest.raises(CorruptImage, match="empty"):
        render_upload(b"", BOX)
    with pytest.raises(ImageTooLarge, match="MiB"):
        decode(b"\xff\xd8\xff" + b"\x00" * 64, max_bytes=32)
    assert MAX_INPUT_BYTES >= 10 * 1024 * 1024  # 10 MB+ uploads are accepted


def test_large_but_legal_upload_renders() -> None:
    buf = io.BytesIO()
    Image.effect_noise((3000, 2000), 80).convert("RGB").save(buf, "PNG", compress_level=0)
    data = buf.getvalue()
    assert len(data) > 10 * 1024 * 1024
    out = render_upload(
        data,
        [{"x": 0, "y": 0, "width": 3000, "height": 400, "text": "big"}],
        RenderOptions(sizes=("thumb",)),
    )
    assert max(out.variants["thumb"].width, out.variants["thumb"].height) <= 160


@pytest.mark.parametrize(
    "box",
    [
        {"x": 0, "y": 0, "width": 0, "height": 30},
        {"x": 0, "y": 0, "width": 30, "height": 0},
        {"x": 190, "y": 0, "width": 30, "height": 30},
        {"x": -5, "y": 0, "width": 30, "height": 30},
        {"x": 0, "y": 0, "width": 30, "height": 30, "align": "justify"},
        {"x": 0, "y": 0, "width": 30, "height": 30, "colour": "red"},
        {"x": 0, "y": 0, "width": "30", "height": 30},
        {"x": 0, "y": 0, "width": 30, "height": 30, "color": "not-a-colour", "text": "x"},
    ],
)
def test_bad_boxes_are_refused(box: dict[str, object]) -> None:
    with pytest.raises(InvalidBox):
        render_upload(_jpeg(), [box])


def test_too_many_boxes() -> None:
    boxes = [{"x": 0, "y": 0, "width": 10, "height": 10}] * 50
    with pytest.raises(InvalidBox, match="at most"):
        render_upload(_jpeg(), boxes)


def test_ten_thousand_characters_are_refused_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidText, match="10000 characters"):
        render_meme("classic", ["A" * 10_000])
    assert time.perf_counter() - started < 0.5


def test_longest_allowed_text_still_fits_its_box() -> None:
    text = ("word " * 100).strip()  # 499 characters
    started = time.perf_counter()
    out = render_meme("classic", [text], RenderOptions(sizes=("thumb",)))
    assert out.variants["thumb"].data
    assert time.perf_counter() - started < 2.0


def test_unbreakable_long_word_is_split_not_overflowing() -> None:
    from domain.rendering.fitting import fit_text
    from domain.rendering.fonts import family_path

    fitted = fit_text("X" * 400, family_path("impact"), 300, 200, max_size=80)
    assert len(fitted.lines) <= 4
    assert fitted.truncated or all(len(line) < 400 for line in fitted.lines)


@pytest.mark.parametrize("bad", ["\x00", "bell\x07", "esc\x1b[31m", "\x7f", "\u202e override"])
def test_control_characters_are_refused(bad: str) -> None:
    with pytest.raises(InvalidText, match="U\\+"):
        render_meme("classic", [bad])


def test_non_string_text_is_refused() -> None:
    with pytest.raises(InvalidText):
        render_meme("classic", [123])  # type: ignore[list-item]
    with pytest.raises(InvalidText, match="list"):
        render_meme("classic", "just a string")  # type: ignore[arg-type]


def test_errors_carry_reason_and_status() -> None:
    try:
        render_upload(b"nope", BOX)
    except RenderError as exc:
        assert exc.reason and exc.status_code == 415 and exc.code == "unsupported_image"
    else:  # pragma: no cover
        pytest.fail("expected a RenderError")


def test_truncation_and_static_fallback_are_reported() -> None:
    out = render_meme("drake", ["word " * 99], RenderOptions(sizes=("thumb",)))
    assert any("shortened" in w for w in out.warnings)
    gif = render_meme("vibe-check", ["x"], RenderOptions(format="jpeg", sizes=("thumb",)))
    assert any("first frame" in w for w in gif.warnings)
