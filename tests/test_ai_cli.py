"""`memestream ai status` and `ai prepare`: the chains per task, and a prepared cache."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from domain.ai.registry import READY_MARKER, Task, caption_cache_dir, gguf_file
from domain.settings import get_settings
from memestream.cli import app


def test_ai_status_lists_every_task_ending_in_the_heuristic() -> None:
    result = CliRunner().invoke(app, ["ai", "status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for task in Task:
        assert task.value in result.output
    assert result.output.count("heuristic") >= len(Task)


def test_ai_prepare_is_a_no_op_once_converted() -> None:
    if gguf_file() is not None and not (caption_cache_dir(get_settings()) / READY_MARKER).exists():
        pytest.skip("the caption model is not converted yet (scripts/bootstrap.sh does it)")
    result = CliRunner().invoke(app, ["ai", "prepare"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "converted" not in result.output
