"""A worker run at WARNING keeps the root logger at WARNING (`streams.app.create_worker`).

Faust's own worker would set it to DEBUG for its terminal spinner, and every library's debug
call would then build a log record; this runs Faust's real root-logger hook.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.settings import Settings
from producers.roles import ROLES
from streams.app import create_app, create_worker


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


async def test_a_worker_at_warning_leaves_debug_records_unbuilt(
    root_logger: logging.Logger, tmp_path: Path
) -> None:
    app = create_app(ROLES["trending"], Settings(worker_data_dir=tmp_path))
    worker = create_worker(app, "warning")
    if not root_logger.handlers:  # Faust's hook adjusts the first handler it finds
        root_logger.addHandler(logging.NullHandler())
    root_logger.setLevel(logging.WARNING)
    worker.on_setup_root_logger(root_logger, logging.WARNING)
    assert root_logger.level == logging.WARNING
    assert not logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.DEBUG)
