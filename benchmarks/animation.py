"""Animation size benchmark (issue #16 point 6): `python -m benchmarks.animation [--quick]`.

The same RGB frames, rendered once by the real engine, are encoded three ways:

  * baseline, "memegen-like": the plain Pillow call memegen makes for a GIF (RGBA frames,
    `save(..., save_all=True, append_images=..., duration=..., loop=0)`, Pillow's default
    quantiser and optimiser); for animated WebP memegen calls libwebp through the `webp`
    package with its defaults (quality 75, method 4, keyframes off), reproduced here
    through Pillow with the same settings;
  * today: the encoder of commit ff899eb, loaded from git at run time;
  * ours: `domain.rendering.formats.encode` at IMAGE_QUALITY=high.

For each: bytes, mean and minimum SSIM of every decoded frame (composited, as a viewer
shows it) against its source frame, and encode CPU time (best of the runs).

Animations: every animated template (catalogue), plus two made by code at 600x407 and run
through `render_upload`: "sprite" (objects move over a still scene) and "pan" (the camera
pans over a grainy scene, so every pixel changes: the video-clip case).
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import io
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageSequence

from benchmarks._result import Result, emit
from domain.rendering import RenderOptions, render_meme, render_upload
from domain.rendering.formats import encode
from domain.settings import ImageQuality
from domain.templates import TemplateCatalog

TODAY_COMMIT = "ff899eb"
SYNTHETIC_SIZE = (600, 407)
SYNTHETIC_FRAMES = 17
LUMA = np.array([0.299, 0.587, 0.114])

Frames = tuple[list[Image.Image], list[int]]
Encoder = Callable[[list[Image.Image], list[int]], bytes]


# --- quality -------------------------------------------------------------------------------


def _luma(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.float64) @ LUMA


def _box_mean(a: np.ndarray, k: int = 7) -> np.ndarray:
    """Mean over every k x k window (valid positions), by a summed-area table."""
    c = np.pad(a, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def ssim(a: Image.Image, b: Image.Image) -> float:
    """SSIM on luma, 7x7 uniform window, the usual constants (K1 0.01, K2 0.03, L 255)."""
    x, y = _luma(a), _luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _box_mean(x), _box_mean(y)
    vx = _box_mean(x * x) - mx * mx
    vy = _box_mean(y * y) - my * my
    cov = _box_mean(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def decoded(data: bytes) -> list[Image.Image]:
    """Every frame as a viewer shows it (Pillow composites GIF and WebP frames)."""
    im = Image.open(io.BytesIO(data))
    return [f.convert("RGB") for f in ImageSequence.Iterator(im)]


# --- frames ----------------------------------------------------------------------------------


def _scene(seed: int) -> Image.Image:
    w, h = SYNTHETIC_SIZE
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None, None]
    sky = (1 - y) * np.array([90, 150, 220]) + y * np.array([240, 200, 150])
    im = Image.fromarray(np.broadcast_to(sky, (h, w, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for i in range(6):
        x0 = 60 + i * 95
        top = 200 - i * 13 + int(rng.integers(0, 6))
        draw.rectangle((x0, top, x0 + 70, 330), fill=(70 + i * 20, 60 + i * 9, 80))
        for wy in range(top + 15, 320, 22):
            draw.rectangle((x0 + 12, wy, x0 + 26, wy + 10), fill=(250, 230, 140))
            draw.rectangle((x0 + 44, wy, x0 + 58, wy + 10), fill=(250, 230, 140))
    draw.rectangle((0, 330, w, h), fill=(60, 120, 60))
    return im.filter(ImageFilter.GaussianBlur(0.8))


def sprite_frames() -> list[Image.Image]:
    """A ball bounces and a diamond sways over a still scene."""
    background = _scene(7)
    out = []
    for k in range(SYNTHETIC_FRAMES):
        t = k / SYNTHETIC_FRAMES
        im = background.copy()
        draw = ImageDraw.Draw(im)
        cx, cy = 80 + 440 * t, 300 - 120 * abs(math.sin(2 * math.pi * t))
        for r in range(40, 0, -4):
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255 - r * 3, 60 + r, 40))
        bx = 300 + 30 * math.sin(2 * math.pi * t)
        diamond = [(bx, 120), (bx + 40, 160), (bx, 200), (bx - 40, 160)]
        draw.polygon(diamond, fill=(30, 30, 160), outline=(255, 255, 255))
        out.append(im)
    return out


def pan_frames() -> list[Image.Image]:
    """The camera pans across a textured scene; fresh grain on every frame."""
    w, h = SYNTHETIC_SIZE
    rng = np.random.default_rng(3)
    big = np.asarray(_scene(3).resize((w + 200, h + 40), Image.Resampling.BICUBIC), np.int16)
    texture = rng.normal(0, 10, size=(h + 40, w + 200)) + 128
    texture_im = Image.fromarray(np.uint8(np.clip(texture, 0, 255))).filter(
        ImageFilter.GaussianBlur(2)
    )
    big = np.clip(big + np.asarray(texture_im, np.int16)[..., None] - 128, 0, 255)
    out = []
    for k in range(SYNTHETIC_FRAMES):
        ox = round(200 * k / (SYNTHETIC_FRAMES - 1))
        oy = round(20 + 20 * math.sin(2 * math.pi * k / SYNTHETIC_FRAMES))
        frame = big[oy : oy + h, ox : ox + w] + rng.normal(0, 3, size=(h, w, 1))
        out.append(Image.fromarray(np.uint8(np.clip(frame, 0, 255))))
    return out


def _lossless(data: bytes) -> Frames:
    im = Image.open(io.BytesIO(data))
    frames, durations = [], []
    for f in ImageSequence.Iterator(im):
        frames.append(f.convert("RGB"))
        durations.append(int(f.info.get("duration", 100)))
    return frames, durations


def template_frames(template_id: str) -> Frames:
    """The template's frames with two captions, composed by the engine (lossless APNG out)."""
    opts = RenderOptions(format="png", quality=ImageQuality.LOSSLESS, sizes=("full",))
    result = render_meme(template_id, ["when the build is green", "on friday"], opts)
    return _lossless(result.variants["full"].data)


def upload_frames(frames: Sequence[Image.Image], duration: int = 60) -> Frames:
    """Code-made frames as an upload with two captions, through `render_upload`."""
    buf = io.BytesIO()
    frames[0].save(
        buf, "PNG", save_all=True, append_images=list(frames[1:]), duration=duration, loop=0
    )
    w, h = frames[0].size
    boxes = [
        {"x": 10, "y": 8, "width": w - 20, "height": 90, "text": "when the animation"},
        {"x": 10, "y": h - 97, "width": w - 20, "height": 90, "text": "finally encodes small"},
    ]
    opts = RenderOptions(format="png", quality=ImageQuality.LOSSLESS, sizes=("full",))
    return _lossless(render_upload(buf.getvalue(), boxes, opts).variants["full"].data)


def animations() -> dict[str, Frames]:
    out = {t.id: template_frames(t.id) for t in TemplateCatalog.default().all() if t.animated}
    out["sprite-600x407"] = upload_frames(sprite_frames())
    out["pan-600x407"] = upload_frames(pan_frames())
    return out


# --- encoders --------------------------------------------------------------------------------


def baseline_gif(frames: list[Image.Image], durations: list[int]) -> bytes:
    """memegen's call: RGBA frames, Pillow's defaults (octree quantiser, optimize on)."""
    rgba = [f.convert("RGBA") for f in frames]
    buf = io.BytesIO()
    rgba[0].save(
        buf, format="gif", save_all=True, append_images=rgba[1:], duration=durations, loop=0
    )
    return buf.getvalue()


def baseline_webp(frames: list[Image.Image], durations: list[int]) -> bytes:
    """libwebp's defaults as memegen's `webp.save_images(..., lossless=False)` gets them."""
    rgba = [f.convert("RGBA") for f in frames]
    buf = io.BytesIO()
    rgba[0].save(
        buf,
        "WEBP",
        save_all=True,
        append_images=rgba[1:],
        duration=durations,
        loop=0,
        quality=75,
        method=4,
        lossless=False,
        kmin=0,
        kmax=0,  # libwebp's own default: no keyframes after the first
    )
    return buf.getvalue()


def ours(fmt: str) -> Encoder:
    def run(frames: list[Image.Image], durations: list[int]) -> bytes:
        return encode(frames, durations, fmt, ImageQuality.HIGH).data

    return run


def today_module(root: Path) -> ModuleType | None:
    """formats.py (and animation.py) of TODAY_COMMIT, importable side by side with ours."""
    try:
        files = {
            name: subprocess.run(
                ["git", "show", f"{TODAY_COMMIT}:domain/rendering/{name}.py"],
                cwd=root,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            for name in ("formats", "animation")
        }
    except (OSError, subprocess.CalledProcessError):
        return None
    folder = Path(tempfile.mkdtemp(prefix="today-encoder-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # imported from there until exit
    (folder / "today_animation.py").write_text(files["animation"])
    (folder / "today_formats.py").write_text(
        files["formats"].replace("domain.rendering.animation", "today_animation")
    )
    sys.path.insert(0, str(folder))
    return importlib.import_module("today_formats")


def today(module: ModuleType, fmt: str) -> Encoder:
    def run(frames: list[Image.Image], durations: list[int]) -> bytes:
        data: bytes = module.encode(frames, durations, fmt, ImageQuality.HIGH).data
        return data

    return run


# --- measuring -------------------------------------------------------------------------------


def measure(
    encoder: Encoder, frames: list[Image.Image], durations: list[int], runs: int
) -> dict[str, float]:
    best = math.inf
    data = b""
    for _ in range(runs):
        start = time.process_time()
        data = encoder(frames, durations)
        best = min(best, time.process_time() - start)
    shown = decoded(data)
    if len(shown) != len(frames):
        raise AssertionError(f"{len(shown)} frames decoded, {len(frames)} encoded")
    scores = [ssim(a, b) for a, b in zip(shown, frames, strict=True)]
    return {
        "bytes": len(data),
        "ssim_mean": float(np.mean(scores)),
        "ssim_min": float(np.min(scores)),
        "ms": best * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one timed run per encoder")
    args = parser.parse_args()
    runs = 1 if args.quick else 3
    cores = os.cpu_count() or 1
    old = today_module(Path(__file__).resolve().parent.parent)
    print(f"nproc {cores}; CPU ms = best of {runs}; ours = IMAGE_QUALITY high")
    header = f"{'animation':16s} {'fmt':4s} {'encoder':8s} {'bytes':>9s} {'ssim mean/min':>15s}"
    print(header + f" {'ms':>7s} {'bytes/base':>10s}")
    figures: dict[str, list[str]] = {"gif": [], "webp": []}
    worst: dict[str, float] = {"gif": 0.0, "webp": 0.0}
    for name, (frames, durations) in animations().items():
        size = f"{frames[0].width}x{frames[0].height}x{len(frames)}"
        for fmt, base in (("gif", baseline_gif), ("webp", baseline_webp)):
            encoders: list[tuple[str, Encoder]] = [("baseline", base)]
            if old is not None:
                encoders.append(("today", today(old, fmt)))
            encoders.append(("ours", ours(fmt)))
            rows = {label: measure(enc, frames, durations, runs) for label, enc in encoders}
            for label, row in rows.items():
                ratio = row["bytes"] / rows["baseline"]["bytes"]
                print(
                    f"{name:16s} {fmt:4s} {label:8s} {row['bytes']:9.0f} "
                    f"{row['ssim_mean']:7.4f}/{row['ssim_min']:.4f} {row['ms']:7.1f} "
                    f"{ratio:10.2f}"
                )
            mine, base_row = rows["ours"], rows["baseline"]
            ratio = mine["bytes"] / base_row["bytes"]
            worst[fmt] = max(worst[fmt], ratio)
            speed = f"{mine['ms']:.0f} ms"
            if "today" in rows:
                speed += f" (today {rows['today']['ms']:.0f})"
            figures[fmt].append(
                f"{name} {size}: {mine['bytes'] / 1000:.0f} KB vs {base_row['bytes'] / 1000:.0f}"
                f" ({ratio:.2f}x), SSIM {mine['ssim_mean']:.4f} vs {base_row['ssim_mean']:.4f},"
                f" {speed}"
            )
    results = [
        Result(
            target=f"animation_{fmt}",
            value=round(worst[fmt], 3),
            unit="x memegen-like bytes (worst)",
            figure=f"{fmt.upper()} ours vs memegen-like: " + "; ".join(figures[fmt]),
            method=(
                "the same engine-rendered frames; IMAGE_QUALITY high; encode CPU time, best of "
                f"{runs}; SSIM (luma, 7x7) of every decoded frame (`benchmarks/animation.py`)"
            ),
            cores=cores,
        )
        for fmt in ("gif", "webp")
    ]
    emit("animation", results)


if __name__ == "__main__":
    main()
