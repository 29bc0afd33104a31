"""The replicated stack's tests run their OWN stores: a tmp folder and free ports.

One `HaStack` per session; each module starts only the part it breaks (Kafka, Redis or
MinIO) through `support.started`. The PostgreSQL HA tests get a private MinIO (HTTPS) and a
pg_auto_failover cluster (monitor, primary, standby, pgBackRest archiving into that MinIO),
its schema migrated through the multi-host URL, so onto the primary. The shared stack is never
touched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.ha_restore import HaBackupRig, ha_backup_rig
from domain.settings import Settings
from memestream.stack.ha import HaStack
from memestream.stack.postgres_ha import WRITABLE_STATES, DataNode
from sinks.postgres.migrate import migrate
from tests.ha.support import free_ports


@pytest.fixture(scope="session")
def ha_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaStack]:
    stack = HaStack(Settings(stack_dir=tmp_path_factory.mktemp("ha-stack")), free_ports())
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def pg_ha() -> Iterator[HaBackupRig]:
    with ha_backup_rig() as rig:
        migrate(rig.settings)
        yield rig


def primary(rig: HaBackupRig) -> DataNode:
    """The one data node the monitor both heard and wants as a primary (a dead primary keeps
    its last reported state until it comes back)."""
    states = rig.monitor.node_states()
    writable = [
        node
        for node in rig.nodes
        if node.port in states and set(states[node.port]) <= WRITABLE_STATES
    ]
    assert len(writable) == 1, states
    return writable[0]
