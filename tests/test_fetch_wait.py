"""A worker's consumer waits at most `KAFKA_FETCH_MAX_WAIT_MS` at the broker for data.

Faust builds the consumer itself (with 1.5 s), so this checks the consumer it builds, through
Faust's own factory: a Faust upgrade that moves it fails here, not in a freshness benchmark.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.settings import Settings
from producers.roles import ROLES
from streams.app import create_app


@pytest.mark.parametrize("role", ["trending", "render", "analytics"])
async def test_every_role_builds_its_consumer_with_the_configured_fetch_wait(
    role: str, tmp_path: Path
) -> None:
    settings = Settings(kafka_fetch_max_wait_ms=80, worker_data_dir=tmp_path)
    app = create_app(ROLES[role], settings)
    consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
    try:
        assert consumer._fetch_max_wait_ms == 80
    finally:
        await consumer.stop()
