"""Why a render failed, in words a user can act on.

Every failure the engine can foresee is a `RenderError`; the worker marks the
meme `failed` with `str(error)` and the API maps `status_code` to a 4xx.
"""

from __future__ import annotations


class RenderError(Exception):
    """A render that cannot succeed with this input; `reason` is human-readable."""

    status_code = 422
    code = "render_failed"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str]]:
        # Keep subclasses picklable across the process pool.
        return (type(self), (self.reason,))


class TemplateNotFound(RenderError, LookupError):
    status_code = 404
    code = "unknown_template"


class InvalidText(RenderError):
    code = "invalid_text"


class TooManyTexts(InvalidText):
    """More texts than the template has boxes."""

    code = "too_many_texts"


class TextTooLong(InvalidText):
    """A text past MAX_TEXT_LENGTH."""

    code = "text_too_long"


class InvalidBox(RenderError):
    code = "invalid_box"


class InvalidOptions(RenderError):
    code = "invalid_options"


class UnsupportedImage(RenderError):
    """Not a JPEG, PNG, GIF or WebP, or bytes that contradict the claimed type."""

    status_code = 415
    code = "unsupported_image"


class CorruptImage(RenderError):
    code = "corrupt_image"


class ImageTooLarge(RenderError):
    """Too many bytes, too many pixels (decompression bomb) or too many frames."""

    status_code = 413
    code = "image_too_large"


class TooManyFrames(ImageTooLarge):
    code = "too_many_frames"
