"""The rendering engine: captions on templates or uploads, in every format and size.

Entry points are module-level and process-pool safe: `render_meme` for catalogue
templates and `render_upload` for client images with client-defined boxes.
"""

from domain.rendering.engine import render_meme, render_upload
from domain.rendering.errors import (
    CorruptImage,
    ImageTooLarge,
    InvalidBox,
    InvalidOptions,
    InvalidText,
    RenderError,
    TemplateNotFound,
    TooManyFrames,
    UnsupportedImage,
)
from domain.rendering.fonts import FONT_PACKAGES
from domain.rendering.options import EncodedImage, RenderedMeme, RenderOptions

__all__ = [
    "FONT_PACKAGES",
    "CorruptImage",
    "EncodedImage",
    "ImageTooLarge",
    "InvalidBox",
    "InvalidOptions",
    "InvalidText",
    "RenderError",
    "RenderOptions",
    "RenderedMeme",
    "TemplateNotFound",
    "TooManyFrames",
    "UnsupportedImage",
    "render_meme",
    "render_upload",
]
