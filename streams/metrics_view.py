"""`GET /metrics` on a worker's Faust web server, for Prometheus and KEDA's Prometheus triggers.

Why on the Faust server: every worker already serves it (`WORKER_WEB_PORT` + the role's index),
so no second port or thread is needed. The body is `domain.metrics.render_metrics()`, which
merges the render pool's processes when `PROMETHEUS_MULTIPROC_DIR` is set.
"""

from __future__ import annotations

from typing import Any

import faust

from domain.metrics import render_metrics

METRICS_PATH = "/metrics"


def register(app: faust.App) -> None:
    @app.page(METRICS_PATH)
    async def metrics(web: Any, request: Any) -> Any:
        body, content_type = render_metrics()
        # aiohttp refuses a charset inside `content_type=`, so the header is set directly.
        return web.bytes(body, headers={"Content-Type": content_type})
