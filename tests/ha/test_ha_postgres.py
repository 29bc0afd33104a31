"""The replicated stack's PostgreSQL as `up --ha` runs it: the pg_auto_failover cluster on the
HA ports, clients on the multi-host URL, the schema registry on it, WAL archived by
pgBackRest into the stack's own MinIO over HTTPS (clients trusting its certificate)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from memestream.stack.ha import HaStack
from memestream.stack.postgres_ha import DataNode
from sinks.storage.s3 import S3ObjectStore
from tests.ha.support import started

pytestmark = pytest.mark.ha

PARTS = ["ha-pg-monitor", "ha-pg-a", "ha-pg-b", "registry", "minio"]


@pytest.fixture(scope="module")
def pg_stack(ha_stack: HaStack) -> Iterator[HaStack]:
    with started(ha_stack, PARTS) as stack:
        yield stack


def test_clients_reach_the_primary_through_the_multi_host_url(pg_stack: HaStack) -> None:
    nodes = [s for s in pg_stack.services.values() if isinstance(s, DataNode)]
    assert [n.port for n in nodes] == [pg_stack.ports.postgres + 1, pg_stack.ports.postgres + 2]
    with psycopg.connect(pg_stack.settings.database_url, connect_timeout=5) as conn:
        row = conn.execute("select inet_server_port(), pg_is_in_recovery()").fetchone()
    assert row is not None and row[1] is False
    assert row[0] in {n.port for n in nodes}


def test_schema_registry_runs_on_the_cluster(pg_stack: HaStack) -> None:
    url = pg_stack.settings.schema_registry_url
    assert url is not None
    response = httpx.get(f"{url.rstrip('/')}/subjects", timeout=10)
    assert response.status_code == 200, response.text
    with psycopg.connect(pg_stack.settings.database_url, connect_timeout=5) as conn:
        row = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'schema_registry'"
        ).fetchone()
    assert row is not None and row[0] > 0


def test_objects_go_to_minio_over_https(pg_stack: HaStack) -> None:
    assert pg_stack.settings.s3_endpoint_url.startswith("https://")
    store = S3ObjectStore(pg_stack.settings)  # trusts S3_CA_FILE, the self-signed cert
    store.ensure_bucket()
    store.put("ha/probe.txt", b"over tls", "text/plain")
    assert store.get("ha/probe.txt").data == b"over tls"


def test_wal_is_archived_into_minio(pg_stack: HaStack) -> None:
    backrest = pg_stack.backrest()
    for node in backrest.nodes:
        with node.connect() as conn:
            row = conn.execute("select current_setting('archive_command')").fetchone()
        assert row is not None and "archive-push" in row[0], node.name
    backrest.run("check")  # switches WAL and waits until pgBackRest archived the segment
    info = backrest.info()
    assert info["archive"], info
