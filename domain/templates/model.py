"""Typed, picklable descriptions of templates and their text boxes.

Plain dataclasses so they cross process boundaries (the render pool) cheaply;
decoded pixels live in a per-process cache, never on these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from PIL import Image

    from domain.templates.frames import Frames

Align = Literal["left", "center", "right"]
VAlign = Literal["top", "middle", "bottom"]


@dataclass(frozen=True, slots=True)
class TextBox:
    """Where one caption goes, in template pixels, and how it looks."""

    name: str
    x: int
    y: int
    width: int
    height: int
    align: Align = "center"
    valign: VAlign = "middle"
    rotation: float = 0.0
    color: str = "#ffffff"
    outline_color: str | None = "#000000"
    font: str = "impact"
    max_font_size: int = 96
    min_font_size: int = 8
    uppercase: bool = True
    max_lines: int = 4
    shadow_color: str | None = None
    gradient: tuple[str, str] | None = None


@dataclass(frozen=True)
class Template:
    """A meme layout: metadata, text boxes and the recipe of its image."""

    id: str
    name: str
    tags: list[str]
    category: str
    width: int
    height: int
    boxes: list[TextBox]
    animated: bool = False
    frame_count: int = 1
    frame_duration_ms: int = 80
    description: str = ""
    artwork: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    source: Path | None = None

    def image(self) -> Image.Image:
        """First (or only) frame, RGB, decoded once per process and cached."""
        return self.frames().images[0]

    def frames(self) -> Frames:
        """Every frame with its timing; one frame for static templates."""
        from domain.templates.frames import template_frames

        return template_frames(self)
