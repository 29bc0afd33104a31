"""The `memestream` command, run in-process through Typer's CliRunner (no mocks)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from domain.settings import PROJECT_ROOT, get_settings
from memestream import cli
from memestream.stack import SERVICE_NAMES, Stack
from producers.topics import ALL_TOPICS

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide tables, so long URLs are not wrapped or cut in captured output."""
    monkeypatch.setattr(cli.console, "_width", 200)


@pytest.fixture(scope="module")
def stack() -> Stack:
    stack = Stack(get_settings())
    stack.start()
    return stack


def test_topics_lists_the_registry() -> None:
    result = runner.invoke(cli.app, ["topics", "--no-create"])
    assert result.exit_code == 0, result.output
    for spec in ALL_TOPICS:
        assert spec.name in result.output


@pytest.mark.services
def test_topics_creates_them_in_kafka(stack: Stack) -> None:
    result = runner.invoke(cli.app, ["topics"])
    assert result.exit_code == 0, result.output
    if importlib.util.find_spec("producers.admin") is None:
        assert "skipped topics" in result.output
        return
    admin = AdminClient({"bootstrap.servers": stack.settings.kafka_bootstrap_servers})
    existing = set(admin.list_topics(timeout=10).topics)
    assert {spec.name for spec in ALL_TOPICS} <= existing


@pytest.mark.services
def test_stack_status_shows_every_service_running(stack: Stack) -> None:
    result = runner.invoke(cli.app, ["stack", "status"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in SERVICE_NAMES:
        row = next(line for line in lines if f" {name} " in line)
        assert ("running" if name != "chdb" else "ready") in row, row


@pytest.mark.services
def test_status_also_lists_the_api_and_worker(stack: Stack) -> None:
    result = runner.invoke(cli.app, ["status"])
    assert result.exit_code == 0, result.output
    assert " api " in result.output and " worker-render " in result.output


def test_an_unknown_service_is_a_usage_error() -> None:
    result = runner.invoke(cli.app, ["stack", "status", "mongodb"])
    assert result.exit_code == 2
    assert "unknown service" in result.output


def test_python_dash_m_memestream_runs_the_same_app() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memestream", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "stack" in done.stdout and "up" in done.stdout


def test_stack_status_ha_lists_the_replicated_services_apart() -> None:
    """`--ha` reports the replicated stack (its own folder and ports) and leaves this
    process's settings alone (only `up --ha` exports them to the processes it starts)."""
    before = get_settings().kafka_bootstrap_servers
    result = runner.invoke(cli.app, ["stack", "status", "--ha"])
    assert result.exit_code == 0, result.output
    for name in ("kafka-1", "kafka-2", "kafka-3", "redis-replica", "sentinel-3", "minio"):
        assert f" {name} " in result.output, name
    assert "127.0.0.1:29000" in result.output and "127.0.0.1:19092" not in result.output
    assert get_settings().kafka_bootstrap_servers == before
