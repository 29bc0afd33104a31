"""The reference cases and how a render is reduced to a small comparable image."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from domain.rendering import RenderOptions, render_meme, render_upload

GOLDEN_DIR = Path(__file__).resolve().parent
#: References are stored at this longest side, in 64 colours, to stay a few KB each.
STORED_SIDE = 256
STORED_COLOURS = 64


def _decode(data: bytes, frame: int = 0) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.seek(frame)
    return im.convert("RGB")


def _meme(template: str, texts: list[str], frame: int = 0, **opts: object) -> Image.Image:
    options = RenderOptions(sizes=("full",), format=str(opts.pop("format", "png")), **opts)  # type: ignore[arg-type]
    return _decode(render_meme(template, texts, options).variants["full"].data, frame)


def _upload_scene() -> bytes:
    """A two-tone photo-like backdrop (ours), light on top and dark below."""
    im = Image.linear_gradient("L").resize((480, 320)).convert("RGB")
    im.paste((30, 60, 90), (0, 160, 480, 320))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _upload(boxes: list[dict[str, object]]) -> Image.Image:
    out = render_upload(_upload_scene(), boxes, RenderOptions(sizes=("full",), format="png"))
    return _decode(out.variants["full"].data)


CASES: dict[str, Callable[[], Image.Image]] = {
    "drake": lambda: _meme("drake", ["Writing tests after shipping", "Writing tests first"]),
    "two-buttons": lambda: _meme("two-buttons", ["Sleep", "One more episode", "Me at 3 AM"]),
    "expanding-brain": lambda: _meme(
        "expanding-brain", ["print()", "a debugger", "writing tests", "reading the error message"]
    ),
    "classic": lambda: _meme("classic", ["One does not simply", "render memes at 150 per second"]),
    "night-dark": lambda: _meme("night-thoughts", ["what if", "the stars are just far pixels"]),
    "hot-take": lambda: _meme("hot-take", ["Tabs are better than spaces", "change my mind"]),
    "vibe-frame0": lambda: _meme("vibe-check", ["vibe check", "passed"], frame=0, format="gif"),
    "vibe-frame8": lambda: _meme("vibe-check", ["vibe check", "passed"], frame=8, format="gif"),
    "long-autofit": lambda: _meme(
        "classic",
        ["when the code works on the first try and you have no idea why it works", "nice"],
    ),
    "deepfry": lambda: _meme("classic", ["deep", "fried"], filters=("deepfry",)),
    "effects-upload": lambda: _upload(
        [
            {
                "x": 10,
                "y": 10,
                "width": 460,
                "height": 140,
                "text": "gradient + shadow",
                "gradient": ["#ffe259", "#ff4e50"],
                "shadow_color": "#000000",
            },
            {
                "x": 10,
                "y": 170,
                "width": 220,
                "height": 140,
                "text": "مرحبا 😂",
                "uppercase": False,
            },
            {
                "x": 250,
                "y": 170,
                "width": 220,
                "height": 140,
                "text": "left, tilted",
                "align": "left",
                "rotation": -12,
                "color": "#111111",
                "outline_color": "#ffffff",
            },
        ]
    ),
}


def reduce(im: Image.Image) -> Image.Image:
    """What is stored and compared: downscaled, then 64 colours (a few KB as PNG)."""
    im = im.convert("RGB")
    im.thumbnail((STORED_SIDE, STORED_SIDE), Image.Resampling.LANCZOS)
    return im.quantize(STORED_COLOURS, method=Image.Quantize.MEDIANCUT).convert("RGB")


def path_for(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.png"


def save(name: str, im: Image.Image) -> Path:
    path = path_for(name)
    reduce(im).quantize(STORED_COLOURS, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def _luma(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("L"), dtype=np.float64)


def _box_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k windows (valid positions) via an integral image."""
    s = np.pad(a, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) / (k * k)


def ssim(a: Image.Image, b: Image.Image, k: int = 7) -> float:
    """Structural similarity on luminance (windowed, the usual constants)."""
    x, y = _luma(a), _luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _box_mean(x, k), _box_mean(y, k)
    vx = _box_mean(x * x, k) - mx * mx
    vy = _box_mean(y * y, k) - my * my
    cxy = _box_mean(x * y, k) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def compare(actual: Image.Image, reference: Image.Image) -> dict[str, float]:
    """Mean absolute difference (0-255), worst 16 px block difference, and SSIM."""
    a = reduce(actual)
    if a.size != reference.size:
        return {"mean_abs": 255.0, "worst_block": 255.0, "ssim": 0.0}
    diff = np.abs(
        np.asarray(a, dtype=np.int16) - np.asarray(reference.convert("RGB"), dtype=np.int16)
    ).mean(axis=2)
    h, w = diff.shape
    cropped = diff[: h // 16 * 16, : w // 16 * 16]
    blocks = cropped.reshape(h // 16, 16, w // 16, 16).mean(axis=(1, 3))
    return {
        "mean_abs": float(diff.mean()),
        "worst_block": float(blocks.max()) if blocks.size else 0.0,
        "ssim": ssim(a, reference),
    }
