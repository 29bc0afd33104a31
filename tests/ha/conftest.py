"""A private MinIO (HTTPS) and PostgreSQL HA cluster (monitor, primary, standby, pgBackRest
archiving into that MinIO) for the `ha` tests: own tmp stack folder and ports, never the
shared stack. The schema is migrated through the multi-host URL, so onto the primary."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.ha_restore import HaBackupRig, ha_backup_rig
from memestream.stack.postgres_ha import WRITABLE_STATES, DataNode
from sinks.postgres.migrate import migrate


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
