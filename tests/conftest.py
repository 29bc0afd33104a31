"""Session fixtures: real services, the schema and topics, and the running processes."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from domain.settings import Settings, get_settings  # noqa: E402
from tests import processes  # noqa: E402
from tests.services import environment, services  # noqa: E402


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """Settings whose URLs point at running services, with schema and topics in place."""
    from producers.admin import ensure_topics
    from sinks.postgres import migrate

    with services(get_settings()) as settings:
        migrate(settings)
        ensure_topics(settings)
        yield settings


@pytest.fixture(scope="session")
def api_url(stack_settings: Settings) -> Iterator[str]:
    port = processes.free_port()
    env = environment(stack_settings) | {"API_PORT": str(port)}
    args = ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with processes.process("api", args, env) as proc:
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_http(f"{url}/health", proc)
        yield url


@pytest.fixture(scope="session")
def render_worker(stack_settings: Settings) -> Iterator[None]:
    from streams.roles import RENDER

    env = environment(stack_settings) | {"WORKER_WEB_PORT": str(processes.free_port())}
    args = ["-m", "streams", "worker", "--role", "render"]
    with processes.process("worker-render", args, env) as proc:
        processes.wait_for_group(stack_settings.kafka_bootstrap_servers, RENDER.group_id, proc)
        yield
