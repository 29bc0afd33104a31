"""A process pool for rendering, sized by WORKER_THREADS, with warm workers.

Rendering is CPU-bound Python + Pillow; processes use every core without
blocking the caller's event loop (`loop.run_in_executor(pool, render_meme, ...)`).
Each worker pre-loads the catalogue, draws the templates and opens the default
fonts once, so the first real request does not pay for it.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

from domain.settings import get_settings


def warm_up() -> None:
    """Load templates and fonts in this process (pool initializer; safe to call twice)."""
    from domain.rendering.fonts import warm
    from domain.templates import TemplateCatalog

    catalog = TemplateCatalog.default()
    for template in catalog.all():
        template.frames()
    warm()


def make_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """Pool of `workers` (default WORKER_THREADS) render processes, already warming."""
    size = workers or get_settings().worker_threads
    return ProcessPoolExecutor(max_workers=size, initializer=warm_up)
