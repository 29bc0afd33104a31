"""Draw template images from the `artwork:` recipe in each config.yaml.

We own every pixel we ship: layouts are drawn procedurally (gradients, panels,
shapes, simple characters), supersampled 2x for smooth edges, and fully
deterministic so golden tests and caches stay stable.

Recipe shape::

    artwork:
      background: "#ffffff"            # or {gradient: [c1, c2, ...], direction: vertical}
      layers:
        - {type: rect, box: [x0, y0, x1, y1], fill: "#f5c542", radius: 12}
        - {type: character, at: [150, 170], size: 260, mood: reject}
        - {type: rays, center: [240, 240], count: 16, colors: [a, b],
           animate: {rotate: 45}}     # animated layers vary over the frames

Layer types: rect, ellipse, polygon, line, gradient, rays, stars, sun, hills,
button, brain, character. Any layer may set `clip: [x0, y0, x1, y1]`.
`animate` keys: dx, dy (pixels, sine), rotate
(degrees over the loop), hue (degrees over the loop), phase (0..1).
"""

from __future__ import annotations

import colorsys
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image, ImageColor, ImageDraw, ImageFilter

SUPERSAMPLE = 2

Spec = dict[str, Any]
RGB = tuple[int, int, int]


class ArtworkError(ValueError):
    """The recipe cannot be drawn (unknown layer type, bad colour...)."""


def draw_frames(artwork: Spec, width: int, height: int, frame_count: int = 1) -> list[Image.Image]:
    """Every frame of a recipe, RGB at the template's size."""
    return [
        draw_frame(artwork, width, height, i / frame_count if frame_count > 1 else 0.0)
        for i in range(max(1, frame_count))
    ]


def draw_frame(artwork: Spec, width: int, height: int, t: float = 0.0) -> Image.Image:
    """One frame at loop position `t` in [0, 1)."""
    ss = SUPERSAMPLE
    canvas = Image.new("RGB", (width * ss, height * ss))
    _background(canvas, artwork.get("background", "#ffffff"), t)
    for layer in artwork.get("layers", []):
        kind = layer.get("type")
        painter = _PAINTERS.get(kind)
        if painter is None:
            raise ArtworkError(f"unknown artwork layer type {kind!r}")
        if "clip" in layer:
            x0, y0, x1, y1 = (round(v * ss) for v in layer["clip"])
            scratch = canvas.copy()
            painter(scratch, _Ctx(layer, t, ss))
            canvas.paste(scratch.crop((x0, y0, x1, y1)), (x0, y0))
        else:
            painter(canvas, _Ctx(layer, t, ss))
    if artwork.get("grain"):
        canvas = _grain(canvas, float(artwork["grain"]))
    return canvas.resize((width, height), Image.Resampling.LANCZOS)


class _Ctx:
    """A layer's parameters with its animation applied at time `t`, in canvas pixels."""

    def __init__(self, layer: Spec, t: float, ss: int) -> None:
        self.layer = layer
        self.ss = ss
        anim: Spec = layer.get("animate") or {}
        phase = (t + float(anim.get("phase", 0.0))) * 2 * math.pi
        self.dx = float(anim.get("dx", 0.0)) * math.sin(phase)
        self.dy = float(anim.get("dy", 0.0)) * math.sin(phase)
        self.angle = float(anim.get("rotate", 0.0)) * t
        self.hue = float(anim.get("hue", 0.0)) * t

    def get(self, key: str, default: Any = None) -> Any:
        return self.layer.get(key, default)

    def px(self, v: float) -> float:
        return v * self.ss

    def pt(self, xy: Sequence[float]) -> tuple[float, float]:
        return ((xy[0] + self.dx) * self.ss, (xy[1] + self.dy) * self.ss)

    def box(self, key: str = "box") -> tuple[float, float, float, float]:
        b = self.layer[key]
        x0, y0 = self.pt(b[:2])
        x1, y1 = self.pt(b[2:])
        return (x0, y0, x1, y1)

    def color(self, key: str, default: str | None = None) -> RGB | None:
        value = self.layer.get(key, default)
        return None if value is None else color(value, self.hue)


def color(value: str, hue_shift: float = 0.0) -> RGB:
    try:
        rgb = ImageColor.getrgb(value)[:3]
    except (ValueError, AttributeError) as exc:
        raise ArtworkError(f"bad colour {value!r}") from exc
    if not hue_shift:
        return (rgb[0], rgb[1], rgb[2])
    h, l_, s = colorsys.rgb_to_hls(*(c / 255 for c in rgb))
    r, g, b = colorsys.hls_to_rgb((h + hue_shift / 360) % 1.0, l_, s)
    return (round(r * 255), round(g * 255), round(b * 255))


def _background(canvas: Image.Image, spec: str | Spec, t: float) -> None:
    if isinstance(spec, str):
        canvas.paste(color(spec), (0, 0, *canvas.size))
        return
    hue = float((spec.get("animate") or {}).get("hue", 0.0)) * t
    stops = [color(c, hue) for c in spec["gradient"]]
    canvas.paste(gradient(canvas.size, stops, spec.get("direction", "vertical")), (0, 0))


def gradient(
    size: tuple[int, int], stops: Sequence[RGB], direction: str = "vertical"
) -> Image.Image:
    """A multi-stop gradient, built from a 1-pixel strip and stretched (fast)."""
    w, h = size
    if direction == "radial":
        radius = Image.radial_gradient("L").resize((w, h), Image.Resampling.BILINEAR)
        return _apply_strip(radius, _strip(stops, 256))
    length = h if direction == "vertical" else w
    strip = _strip(stops, max(2, length))
    line = Image.new("RGB", (1, len(strip)) if direction == "vertical" else (len(strip), 1))
    line.putdata(strip)
    return line.resize((w, h), Image.Resampling.BILINEAR)


def _apply_strip(index: Image.Image, strip: list[RGB]) -> Image.Image:
    """Map an L image (0..255) through a 256-entry colour strip via a palette."""
    indices = Image.frombytes("P", index.size, index.tobytes())
    indices.putpalette([c for rgb in strip[:256] for c in rgb])
    return indices.convert("RGB")


def _strip(stops: Sequence[RGB], length: int) -> list[RGB]:
    if len(stops) == 1:
        return [stops[0]] * length
    out: list[RGB] = []
    segments = len(stops) - 1
    for i in range(length):
        pos = i / (length - 1) * segments
        k = min(int(pos), segments - 1)
        f = pos - k
        a, b = stops[k], stops[k + 1]
        out.append(
            (
                round(a[0] + (b[0] - a[0]) * f),
                round(a[1] + (b[1] - a[1]) * f),
                round(a[2] + (b[2] - a[2]) * f),
            )
        )
    return out


def _grain(canvas: Image.Image, amount: float) -> Image.Image:
    """Deterministic film grain so 'photo' templates look less flat."""
    w, h = canvas.size
    noise = Image.frombytes("L", (w, h), random.Random(1234).randbytes(w * h)).convert("RGB")
    return Image.blend(canvas, noise, 0.05 * amount)


# --- painters ---------------------------------------------------------------------------


def _rect(canvas: Image.Image, c: _Ctx) -> None:
    d = ImageDraw.Draw(canvas)
    d.rounded_rectangle(
        c.box(),
        radius=c.px(c.get("radius", 0)),
        fill=c.color("fill"),
        outline=c.color("outline"),
        width=round(c.px(c.get("width", 0))),
    )


def _ellipse(canvas: Image.Image, c: _Ctx) -> None:
    d = ImageDraw.Draw(canvas)
    d.ellipse(
        c.box(),
        fill=c.color("fill"),
        outline=c.color("outline"),
        width=round(c.px(c.get("width", 0))),
    )


def _polygon(canvas: Image.Image, c: _Ctx) -> None:
    d = ImageDraw.Draw(canvas)
    pts = [c.pt(p) for p in c.get("points")]
    d.polygon(
        pts, fill=c.color("fill"), outline=c.color("outline"), width=round(c.px(c.get("width", 1)))
    )


def _line(canvas: Image.Image, c: _Ctx) -> None:
    d = ImageDraw.Draw(canvas)
    pts = [c.pt(p) for p in c.get("points")]
    d.line(
        pts, fill=c.color("color", "#000000"), width=round(c.px(c.get("width", 2))), joint="curve"
    )


def _gradient_layer(canvas: Image.Image, c: _Ctx) -> None:
    x0, y0, x1, y1 = (round(v) for v in c.box())
    stops = [color(s, c.hue) for s in c.get("colors")]
    patch = gradient((max(1, x1 - x0), max(1, y1 - y0)), stops, c.get("direction", "vertical"))
    canvas.paste(patch, (x0, y0))


def _rays(canvas: Image.Image, c: _Ctx) -> None:
    cx, cy = c.pt(c.get("center"))
    count = int(c.get("count", 12))
    radius = c.px(c.get("radius", max(canvas.size)))
    colors = [color(v, c.hue) for v in c.get("colors", ["#ffdd55", "#ffaa00"])]
    d = ImageDraw.Draw(canvas)
    step = 360 / count
    for i in range(count):
        a0 = math.radians(i * step + c.angle)
        a1 = math.radians((i + 1) * step + c.angle)
        d.polygon(
            [
                (cx, cy),
                (cx + radius * math.cos(a0), cy + radius * math.sin(a0)),
                (cx + radius * math.cos(a1), cy + radius * math.sin(a1)),
            ],
            fill=colors[i % len(colors)],
        )


def _stars(canvas: Image.Image, c: _Ctx) -> None:
    rng = random.Random(int(c.get("seed", 7)))
    x0, y0, x1, y1 = c.box()
    d = ImageDraw.Draw(canvas)
    fill = c.color("color", "#ffffff")
    for _ in range(int(c.get("count", 40))):
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        r = c.px(rng.uniform(0.6, 1.0) * float(c.get("size", 2)))
        d.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def _sun(canvas: Image.Image, c: _Ctx) -> None:
    cx, cy = c.pt(c.get("at"))
    r = c.px(c.get("radius", 40))
    fill = c.color("color", "#ffd86b") or (255, 216, 107)
    glow = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(glow).ellipse((cx - 2 * r, cy - 2 * r, cx + 2 * r, cy + 2 * r), fill=110)
    glow = glow.filter(ImageFilter.GaussianBlur(r * 0.8))
    canvas.paste(fill, (0, 0, *canvas.size), glow)
    ImageDraw.Draw(canvas).ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)


def _hills(canvas: Image.Image, c: _Ctx) -> None:
    rng = random.Random(int(c.get("seed", 3)))
    w, h = canvas.size
    base = c.px(c.get("y", 400)) + c.dy * c.ss
    amp = c.px(c.get("amplitude", 30))
    waves = [(rng.uniform(1, 3), rng.uniform(0, 6.28)) for _ in range(3)]
    pts = [(0.0, float(h))]
    for i in range(65):
        x = w * i / 64
        y = base + sum(math.sin(x / w * math.pi * f + p) for f, p in waves) / 3 * amp
        pts.append((x, y))
    pts.append((float(w), float(h)))
    ImageDraw.Draw(canvas).polygon(pts, fill=c.color("color", "#2d4a2b"))


def _button(canvas: Image.Image, c: _Ctx) -> None:
    """A big glossy push button seen from slightly above."""
    x0, y0, x1, y1 = c.box()
    fill = c.color("color", "#d93434") or (217, 52, 52)
    dark = tuple(int(v * 0.6) for v in fill)
    light = tuple(min(255, int(v + (255 - v) * 0.45)) for v in fill)
    d = ImageDraw.Draw(canvas)
    depth = (y1 - y0) * 0.25
    d.rounded_rectangle(
        (x0 - 8 * c.ss, y0 + depth * 0.6, x1 + 8 * c.ss, y1 + depth + 6 * c.ss),
        radius=(y1 - y0) / 2,
        fill=(120, 120, 130),
    )
    d.ellipse((x0, y0 + depth, x1, y1 + depth), fill=dark)
    d.ellipse((x0, y0, x1, y1), fill=fill)
    hx = (x1 - x0) * 0.18
    hy = (y1 - y0) * 0.2
    d.ellipse((x0 + hx, y0 + hy * 0.5, x1 - hx * 2.5, y0 + hy * 1.8), fill=light)


def _brain(canvas: Image.Image, c: _Ctx) -> None:
    """A brain in profile; `level` 0..3 adds glow and light rays."""
    cx, cy = c.pt(c.get("at"))
    s = c.px(c.get("size", 120))
    level = int(c.get("level", 0))
    d = ImageDraw.Draw(canvas)
    if level >= 2:
        rays_r = s * (0.9 + 0.35 * level)
        step = 360 / (10 + 6 * level)
        for i in range(10 + 6 * level):
            a0, a1 = math.radians(i * step), math.radians(i * step + step * 0.45)
            d.polygon(
                [
                    (cx, cy),
                    (cx + rays_r * math.cos(a0), cy + rays_r * math.sin(a0)),
                    (cx + rays_r * math.cos(a1), cy + rays_r * math.sin(a1)),
                ],
                fill=(255, 255, 210) if level == 3 else (160, 220, 255),
            )
    if level >= 1:
        glow = Image.new("L", canvas.size, 0)
        g = s * (0.55 + 0.2 * level)
        ImageDraw.Draw(glow).ellipse((cx - g, cy - g, cx + g, cy + g), fill=90 + 40 * level)
        glow = glow.filter(ImageFilter.GaussianBlur(s * 0.18))
        canvas.paste((150, 220, 255) if level < 3 else (255, 250, 200), (0, 0, *canvas.size), glow)
    pink = [(238, 150, 170), (247, 170, 190), (190, 240, 255), (255, 255, 240)][min(level, 3)]
    fold = [(170, 80, 105), (190, 95, 125), (70, 160, 220), (255, 200, 90)][min(level, 3)]
    rx, ry = s * 0.5, s * 0.36
    lw = max(2, int(s / 40))
    d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=pink, outline=fold, width=lw)
    d.ellipse(
        (cx - rx * 0.2, cy + ry * 0.5, cx + rx * 0.35, cy + ry * 1.2),
        fill=pink,
        outline=fold,
        width=lw,
    )
    rng = random.Random(11)
    for _ in range(9):
        ax = cx + rng.uniform(-0.75, 0.65) * rx
        ay = cy + rng.uniform(-0.7, 0.55) * ry
        r = s * rng.uniform(0.08, 0.15)
        d.arc(
            (ax - r, ay - r, ax + r, ay + r),
            rng.uniform(0, 180),
            rng.uniform(200, 340),
            fill=fold,
            width=max(2, int(s / 45)),
        )
    d.line(
        [(cx, cy - ry * 0.95), (cx - rx * 0.1, cy + ry * 0.4)], fill=fold, width=max(2, int(s / 45))
    )


def _character(canvas: Image.Image, c: _Ctx) -> None:
    """A simple cartoon person: head, hair, face for a `mood`, optional `gesture`."""
    cx, cy = c.pt(c.get("at"))
    s = c.px(c.get("size", 200))
    skin = c.color("skin", "#e0ac69") or (224, 172, 105)
    hair = c.color("hair", "#2b1d14") or (43, 29, 20)
    shirt = c.color("shirt", "#e8a33d") or (232, 163, 61)
    ink = (30, 24, 20)
    mood = c.get("mood", "neutral")
    gesture = c.get("gesture", "none")
    w = max(2, int(s / 60))
    d = ImageDraw.Draw(canvas)
    hr = s * 0.2
    hx, hy = cx, cy - s * 0.12
    # Body and neck.
    d.rounded_rectangle(
        (cx - s * 0.36, hy + hr * 1.05, cx + s * 0.36, cy + s * 0.5),
        radius=s * 0.16,
        fill=shirt,
        outline=ink,
        width=w,
    )
    d.rectangle((cx - hr * 0.35, hy + hr * 0.7, cx + hr * 0.35, hy + hr * 1.25), fill=skin)
    # Head.
    d.ellipse((hx - hr, hy - hr * 1.12, hx + hr, hy + hr * 1.05), fill=skin, outline=ink, width=w)
    d.ellipse(
        (hx - hr * 1.14, hy - hr * 0.2, hx - hr * 0.86, hy + hr * 0.25),
        fill=skin,
        outline=ink,
        width=w,
    )
    d.ellipse(
        (hx + hr * 0.86, hy - hr * 0.2, hx + hr * 1.14, hy + hr * 0.25),
        fill=skin,
        outline=ink,
        width=w,
    )
    d.chord((hx - hr * 1.02, hy - hr * 1.2, hx + hr * 1.02, hy + hr * 0.2), 180, 360, fill=hair)
    # Eyes and brows.
    ex, ey, er = hr * 0.4, hy - hr * 0.1, hr * 0.13
    for sx in (-1, 1):
        x = hx + sx * ex
        if mood in ("reject", "sad"):
            d.arc((x - er, ey - er * 0.3, x + er, ey + er * 1.2), 200, 340, fill=ink, width=w * 2)
            d.line(
                [
                    (x - er * 1.3, ey - er * 2.2 + (sx * er * 0.6 if mood == "sad" else 0)),
                    (x + er * 1.3, ey - er * 2.2 - (sx * er * 0.6 if mood == "sad" else 0)),
                ],
                fill=hair,
                width=w * 2,
            )
        else:
            big = 1.5 if mood == "shocked" else 1.0
            d.ellipse(
                (x - er * big, ey - er * big, x + er * big, ey + er * big),
                fill="white",
                outline=ink,
                width=w,
            )
            look = er * 0.35 * (1 if gesture == "point" else 0)
            d.ellipse(
                (x - er * 0.5 + look, ey - er * 0.5, x + er * 0.5 + look, ey + er * 0.5), fill=ink
            )
            tilt = er * (0.8 if mood in ("smug", "approve") else 0)
            d.line(
                [
                    (x - er * 1.3, ey - er * 2.1 - sx * tilt * 0.3),
                    (x + er * 1.3, ey - er * 2.1 + sx * tilt * 0.3),
                ],
                fill=hair,
                width=w * 2,
            )
    # Mouth.
    my, mw = hy + hr * 0.5, hr * 0.45
    if mood in ("happy", "approve", "smug"):
        d.chord(
            (hx - mw, my - mw * 0.6, hx + mw, my + mw * 0.6),
            0,
            180,
            fill=(120, 30, 40),
            outline=ink,
            width=w,
        )
    elif mood in ("reject", "sad"):
        d.arc((hx - mw * 0.8, my, hx + mw * 0.8, my + mw * 0.8), 200, 340, fill=ink, width=w * 2)
    elif mood == "shocked":
        d.ellipse(
            (hx - mw * 0.4, my - mw * 0.3, hx + mw * 0.4, my + mw * 0.6),
            fill=(90, 20, 30),
            outline=ink,
            width=w,
        )
    else:
        d.line(
            [(hx - mw * 0.6, my + mw * 0.2), (hx + mw * 0.6, my + mw * 0.2)], fill=ink, width=w * 2
        )
    if mood == "sweat" or gesture == "sweat":
        for k, (ox, oy) in enumerate(((1.05, -0.6), (1.2, 0.1), (-1.15, -0.3))):
            sx, sy, sr = hx + hr * ox, hy + hr * oy, hr * (0.13 - 0.02 * k)
            d.polygon([(sx, sy - sr * 2.2), (sx - sr, sy), (sx + sr, sy)], fill=(120, 190, 255))
            d.ellipse((sx - sr, sy - sr, sx + sr, sy + sr), fill=(120, 190, 255))
    _gesture(d, gesture, cx, hx, hy, hr, s, skin, shirt, ink, w)


def _gesture(
    d: ImageDraw.ImageDraw,
    gesture: str,
    cx: float,
    hx: float,
    hy: float,
    hr: float,
    s: float,
    skin: RGB,
    shirt: RGB,
    ink: RGB,
    w: int,
) -> None:
    if gesture == "reject":
        # Arm raised across the face, palm out: "no thanks".
        d.line(
            [(cx + s * 0.3, hy + hr * 1.8), (hx + hr * 1.3, hy - hr * 0.1)],
            fill=shirt,
            width=int(s * 0.14),
        )
        px, py, pr = hx + hr * 1.25, hy - hr * 0.35, hr * 0.5
        d.rounded_rectangle(
            (px - pr * 0.8, py - pr * 1.3, px + pr * 0.8, py + pr * 0.9),
            radius=pr * 0.6,
            fill=skin,
            outline=ink,
            width=w,
        )
        for k in range(4):
            fx = px - pr * 0.6 + k * pr * 0.4
            d.line([(fx, py - pr * 1.1), (fx, py - pr * 0.3)], fill=ink, width=max(1, w // 2))
    elif gesture == "point":
        # Arm extended to the side with a pointing finger: "yes, this".
        sx, sy = cx + s * 0.3, hy + hr * 1.6
        ex, ey = cx + s * 0.62, hy + hr * 0.4
        d.line([(sx, sy), (ex, ey)], fill=shirt, width=int(s * 0.13))
        r = hr * 0.32
        d.ellipse((ex - r, ey - r, ex + r, ey + r), fill=skin, outline=ink, width=w)
        d.rounded_rectangle(
            (ex + r * 0.3, ey - r * 0.35, ex + r * 2.2, ey + r * 0.2),
            radius=r * 0.25,
            fill=skin,
            outline=ink,
            width=w,
        )


_PAINTERS: dict[str, Callable[[Image.Image, _Ctx], None]] = {
    "rect": _rect,
    "ellipse": _ellipse,
    "polygon": _polygon,
    "line": _line,
    "gradient": _gradient_layer,
    "rays": _rays,
    "stars": _stars,
    "sun": _sun,
    "hills": _hills,
    "button": _button,
    "brain": _brain,
    "character": _character,
}
