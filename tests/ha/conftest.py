"""A private PostgreSQL HA cluster (monitor, primary, standby) for the `ha` tests: own tmp
stack folder and ports, never the shared stack."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from domain.settings import Settings
from loadgen.private_platform import bindable
from memestream.stack.layout import StackLayout
from memestream.stack.postgres_ha import (
    WRITABLE_STATES,
    DataNode,
    MonitorNode,
    ha_database_url,
    postgres_ha_nodes,
)
from memestream.testing.private_stack import free_port
from sinks.postgres.migrate import migrate


@dataclass
class PgHa:
    settings: Settings  # DATABASE_URL is the multi-host URL of the data nodes
    layout: StackLayout
    monitor: MonitorNode
    nodes: list[DataNode]

    def primary(self) -> DataNode:
        """The one data node the monitor both heard and wants as a primary (a dead primary
        keeps its last reported state until it comes back)."""
        states = self.monitor.node_states()
        writable = [
            node
            for node in self.nodes
            if set(states.get(node.port, ())) <= WRITABLE_STATES and node.port in states
        ]
        assert len(writable) == 1, states
        return writable[0]


def _free_run(length: int) -> int:
    """A port whose `length - 1` successors are free too."""
    for _ in range(200):
        base = free_port()
        if all(bindable(base + i) for i in range(length)):
            return base
    raise RuntimeError("no free run of ports")


@pytest.fixture(scope="session")
def pg_ha() -> Iterator[PgHa]:
    root = Path(tempfile.mkdtemp(prefix="memestream-ha-"))
    settings = Settings(postgres_ha_port=_free_run(3), stack_dir=root)
    layout = StackLayout(root, settings.cache_dir)
    monitor, nodes = postgres_ha_nodes(settings, layout)
    services = [monitor, *nodes]
    try:
        for service in services:
            service.start()
        ha_settings = settings.model_copy(update={"database_url": ha_database_url(settings)})
        migrate(ha_settings)
        yield PgHa(ha_settings, layout, monitor, nodes)
    finally:
        for service in reversed(services):
            service.stop()
        shutil.rmtree(root, ignore_errors=True)
