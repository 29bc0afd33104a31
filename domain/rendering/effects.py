"""Text effects as masks and paints: outline (stroke mask), soft shadow, gradient."""

from __future__ import annotations

from PIL import Image, ImageChops, ImageColor, ImageFilter

from domain.rendering.errors import InvalidBox

RGB = tuple[int, int, int]

#: Shadow offset and blur as fractions of the font size.
SHADOW_OFFSET = 0.06
SHADOW_BLUR = 0.05


def colour(value: str) -> RGB:
    try:
        rgb = ImageColor.getrgb(value)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidBox(f"bad colour {value!r}") from exc
    return (rgb[0], rgb[1], rgb[2])


def vertical_gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    strip = Image.new("RGB", (1, 2))
    strip.putdata([top, bottom])
    return strip.resize(size, Image.Resampling.BILINEAR)


def shadow_mask(mask: Image.Image, size: int) -> Image.Image:
    """The text's silhouette, offset down-right and softened; same size as `mask`."""
    offset = max(1, round(size * SHADOW_OFFSET))
    blur = max(1.0, size * SHADOW_BLUR)
    shifted = ImageChops.offset(mask, offset, offset)
    # ImageChops.offset wraps around; blank the wrapped strips.
    shifted.paste(0, (0, 0, mask.width, offset))
    shifted.paste(0, (0, 0, offset, mask.height))
    soft = shifted.filter(ImageFilter.GaussianBlur(blur))
    return soft.point([min(255, v * 3 // 2) for v in range(256)])
