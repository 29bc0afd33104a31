"""The replicated stack's tests run their OWN HA stack: a tmp folder and free ports.

One `HaStack` per session; each module starts only the part it breaks (Kafka, Redis or
MinIO) through `support.started`. The shared stack is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.settings import Settings
from memestream.stack.ha import HaStack
from tests.ha.support import free_ports


@pytest.fixture(scope="session")
def ha_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaStack]:
    stack = HaStack(Settings(stack_dir=tmp_path_factory.mktemp("ha-stack")), free_ports())
    yield stack
    stack.stop()
