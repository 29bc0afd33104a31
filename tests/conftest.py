"""Session fixtures: real services, the schema and topics, and the running processes."""

from __future__ import annotations

import os
import uuid

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Every test calls from 127.0.0.1 or `testclient`, so the whole suite shares one anonymous
# budget: limits no suite trips (tests/test_rate_limit.py sets low ones on its own app).
os.environ.setdefault("RATE_LIMIT_READS_PER_MINUTE", "1000000")
os.environ.setdefault("RATE_LIMIT_WRITES_PER_MINUTE", "1000000")
os.environ.setdefault("RATE_LIMIT_AI_UNITS_PER_MINUTE", "1000000")
# The session's own inference subjects: its API and inference workers never answer (or ask)
# a running `memestream up` or another test session on the shared NATS.
os.environ.setdefault("INFERENCE_SUBJECT", f"memestream-test-{uuid.uuid4().hex[:8]}.inference")

from collections.abc import Iterator

import pytest

from domain.settings import Settings, get_settings
from memestream.testing import processes
from memestream.testing.environment import environment
from tests.ai_fixtures import tiny_models  # noqa: F401  (session fixture of tests/test_ai_*)
from tests.chaos.private import private_stack_fixture  # noqa: F401
from tests.services import services


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """Settings whose URLs point at running services, with schema, templates and topics in
    place: what `memestream migrate`, `memestream topics` and `memestream schemas register` do
    before the platform starts."""
    from producers.admin import ensure_topics
    from producers.schema_registry import check_subjects, registry_client
    from producers.serialization import default_registry
    from sinks.postgres import migrate
    from sinks.postgres.templates import seed_templates

    with services(get_settings()) as settings:
        migrate(settings)
        seed_templates(settings)  # a fresh database lists no template until this
        ensure_topics(settings)
        if settings.schema_registry_url:
            client = registry_client(settings.schema_registry_url, timeout_s=10)
            check_subjects(
                client,
                default_registry(),
                register=True,
                compatibility=settings.schema_compatibility,
            )
        yield settings


@pytest.fixture(scope="session")
def api_process(stack_settings: Settings) -> Iterator[tuple[str, int]]:
    """The API as a subprocess: its URL and pid."""
    port = processes.free_port()
    env = environment(stack_settings) | {"API_PORT": str(port)}
    args = ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with processes.process("api", args, env) as proc:
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_http(f"{url}/health", proc)
        yield url, proc.pid


@pytest.fixture(scope="session")
def api_url(api_process: tuple[str, int]) -> str:
    return api_process[0]


@pytest.fixture(scope="session")
def inference_worker(stack_settings: Settings) -> Iterator[str]:
    """An inference worker subprocess on the session's subjects, with whatever models are
    installed (the packaged ones in CI); yields its web URL (`/metrics`, `/health`)."""
    with processes.inference_worker(environment(stack_settings)) as url:
        yield url


# Per module: a worker left running would render what later modules expect to stay pending.
@pytest.fixture(scope="module")
def render_worker(stack_settings: Settings) -> Iterator[int]:
    """A render worker subprocess; yields its Faust web port (`/metrics`)."""
    from producers.roles import RENDER

    # A group of its own that starts at the end of the topic: the tests' worker neither
    # shares partitions with a running `memestream up` nor replays earlier runs.
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    web_port = processes.free_port()
    env = environment(stack_settings) | {
        "WORKER_WEB_PORT": str(web_port),
        "CONSUMER_GROUP_PREFIX": prefix,
        "KAFKA_AUTO_OFFSET_RESET": "latest",
    }
    args = ["-m", "streams", "worker", "--role", "render"]
    group = RENDER.group_id_for(prefix)
    processes.pin_group_offsets(stack_settings.kafka_bootstrap_servers, group, RENDER.topics)
    with processes.process("worker-render", args, env) as proc:
        processes.wait_for_group(stack_settings.kafka_bootstrap_servers, group, proc)
        yield web_port


#: Fixtures that reach a real service: the shared stack's settings (every API, worker and
#: store fixture depends on it), a private stack (chaos) or the `stack` itself (test_stack,
#: test_cli). A test using any of them, directly or through other fixtures, is `services`.
SERVICE_FIXTURES = frozenset({"stack_settings", "private_stack", "stack"})
#: Markers that mean services too, whatever the fixtures.
SERVICE_MARKERS = frozenset({"services", "e2e", "chaos", "ha", "browser"})


def needs_services(item: pytest.Item) -> bool:
    if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    return any(item.get_closest_marker(name) for name in SERVICE_MARKERS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks every test `services` or `unit`, so `make test-unit` (`-m unit`) runs what needs
    no service: by the fixtures a test uses (their whole closure, which pytest resolves) and
    the markers its module or class sets (a module that reaches a service without a fixture
    says so with `pytestmark = pytest.mark.services`)."""
    for item in items:
        if needs_services(item):
            item.add_marker(pytest.mark.services)
        else:
            item.add_marker(pytest.mark.unit)
