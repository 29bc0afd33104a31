"""Load the template catalogue from `templates/<id>/config.yaml` folders.

config.yaml keys: name, tags, category, size [w, h], description, optional
`animation: {frames, duration_ms}`, optional `image:` (a file in the folder, for
uploaded templates) or `artwork:` (our own drawing recipe), optional
`box_defaults:` and `boxes:` (list of TextBox fields in template pixels).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from domain.templates.model import Template

TEMPLATE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_TEMPLATE_SIDE = 4096
#: Label lengths, the upload form's limits too (api/routes/templates.py).
MAX_NAME = 80
MAX_DESCRIPTION = 1000
MAX_TAG = 40


class UnknownTemplate(LookupError):
    """No template with this id; `template_id` says which one was asked for."""

    def __init__(self, template_id: str) -> None:
        super().__init__(template_id)
        self.template_id = template_id

    def __str__(self) -> str:
        return f"unknown template {self.template_id!r}"


class TemplateConfigError(ValueError):
    """A config.yaml that cannot describe a usable template."""


def templates_dir() -> Path:
    from domain.settings import PROJECT_ROOT

    return PROJECT_ROOT / "templates"


class TemplateCatalog:
    """Every template by id; immutable after loading, safe to share between threads."""

    _default: TemplateCatalog | None = None
    _default_lock = threading.Lock()

    def __init__(self, templates: Iterable[Template]) -> None:
        self._by_id: dict[str, Template] = {}
        for t in templates:
            if t.id in self._by_id:
                raise TemplateConfigError(f"duplicate template id {t.id!r}")
            self._by_id[t.id] = t

    @classmethod
    def default(cls) -> TemplateCatalog:
        """The project's catalogue, loaded once per process."""
        if cls._default is None:
            with cls._default_lock:
                if cls._default is None:
                    cls._default = cls.load(templates_dir())
        return cls._default

    @classmethod
    def load(cls, root: Path) -> TemplateCatalog:
        configs = sorted(root.glob("*/config.yaml"))
        return cls(load_template(p) for p in configs)

    def get(self, template_id: str) -> Template:
        try:
            return self._by_id[template_id]
        except (KeyError, TypeError):
            raise UnknownTemplate(str(template_id)) from None

    def __contains__(self, template_id: object) -> bool:
        return template_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> list[Template]:
        return list(self._by_id.values())

    def ids(self) -> list[str]:
        return list(self._by_id)


def load_template(config_path: Path) -> Template:
    """Parse and validate one config.yaml; the folder name is the id."""
    template_id = config_path.parent.name
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateConfigError(f"{config_path}: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise TemplateConfigError(f"{config_path}: expected a mapping")
    try:
        return template_from_config(template_id, raw, config_path.parent)
    except (KeyError, TypeError, ValueError) as exc:
        raise TemplateConfigError(f"{config_path}: {exc}") from exc


def max_template_frames() -> int:
    """MAX_FRAMES: a template with more frames could never render, so it is refused up front."""
    from domain.settings import get_settings

    return get_settings().max_frames


def template_from_config(
    template_id: str,
    raw: Mapping[str, Any],
    folder: Path | None = None,
    *,
    max_frames: int | None = None,
) -> Template:
    """A validated template; `max_frames` defaults to this process' MAX_FRAMES."""
    if not TEMPLATE_ID.match(template_id):
        raise ValueError(f"bad template id {template_id!r} (lowercase letters, digits, '-')")
    width, height = (int(v) for v in raw["size"])
    if not (16 <= width <= MAX_TEMPLATE_SIDE and 16 <= height <= MAX_TEMPLATE_SIDE):
        raise ValueError(f"size {width}x{height} outside 16..{MAX_TEMPLATE_SIDE}")
    animation = raw.get("animation") or {}
    frame_count = int(animation.get("frames", 1))
    cap = max_template_frames() if max_frames is None else max_frames
    if not 1 <= frame_count <= cap:
        raise ValueError(f"frames must be 1..{cap} (MAX_FRAMES)")
    source = None
    if raw.get("image"):
        if folder is None:
            raise ValueError("image: needs a template folder")
        source = (folder / str(raw["image"])).resolve()
        if source.parent != folder.resolve():
            raise ValueError("image: must be a file inside the template folder")
    elif not isinstance(raw.get("artwork"), Mapping):
        raise ValueError("either image: or artwork: is required")
    # The renderer's own validator (a local import: domain.rendering imports this package).
    from domain.rendering.errors import RenderError
    from domain.rendering.validation import check_boxes, check_label

    defaults = dict(raw.get("box_defaults") or {})
    listed = raw.get("boxes", [])
    if isinstance(listed, list) and not all(isinstance(b, Mapping) for b in listed):
        raise ValueError("every box must be a mapping of TextBox fields")
    try:
        boxes = check_boxes(
            [{**defaults, **b} for b in listed] if isinstance(listed, list) else listed,
            width,
            height,
        )
        name = check_label(str(raw.get("name", template_id)), "name", MAX_NAME)
        description = check_label(str(raw.get("description", "")), "description", MAX_DESCRIPTION)
        tags = [check_label(str(t), "tag", MAX_TAG) for t in raw.get("tags", [])]
        category = check_label(str(raw.get("category", "misc")), "category", MAX_TAG)
    except RenderError as exc:
        raise TemplateConfigError(str(exc)) from exc
    return Template(
        id=template_id,
        name=name,
        tags=tags,
        category=category,
        width=width,
        height=height,
        boxes=boxes,
        animated=frame_count > 1,
        frame_count=frame_count,
        frame_duration_ms=int(animation.get("duration_ms", 80)),
        description=description,
        artwork=dict(raw.get("artwork") or {}),
        source=source,
    )
