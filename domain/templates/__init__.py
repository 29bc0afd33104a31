"""Meme templates as data: one folder per template with a `config.yaml`.

Images are never stored: each template's `artwork:` section describes how our own
code draws it (see `artwork.py`), so the repository holds no third-party images.
"""

from domain.templates.catalog import TemplateCatalog, UnknownTemplate
from domain.templates.model import Template, TextBox

__all__ = ["Template", "TemplateCatalog", "TextBox", "UnknownTemplate"]
