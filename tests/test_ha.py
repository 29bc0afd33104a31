"""The replicated stack's composition, without starting it: ports, settings and configs.

tests/ha/ starts it and kills its nodes; this checks what it would run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.settings import Settings
from memestream.stack.ha import HaPorts, HaStack, ha_env, ha_settings
from memestream.stack.kafka import KafkaBroker
from memestream.stack.minio_erasure import ErasureMinioServer
from memestream.stack.minio_tls import TlsMinioServer
from memestream.stack.redis import RedisServer
from memestream.stack.redis_sentinel import SentinelServer
from memestream.stack.stack import Stack
from sinks.redis.client import sentinel_addresses

SHARED_PORTS = {19092, 19093, 15432, 16379, 19000, 19001, 14222, 18081, 18082, 8000}


@pytest.fixture
def base(tmp_path: Path) -> Settings:
    return Settings(stack_dir=tmp_path, cache_dir=tmp_path / "cache")


def test_ha_stack_has_its_own_folder_ports_and_services(base: Settings) -> None:
    stack = HaStack(base)
    assert stack.layout.root == base.stack_path / "ha"
    assert set(stack.services) >= {
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "redis-master",
        "redis-replica",
        "sentinel-1",
        "sentinel-2",
        "sentinel-3",
        "minio",
        "ha-pg-monitor",
        "ha-pg-a",
        "ha-pg-b",
        "registry",
    }
    assert "postgres" not in stack.services  # no single PostgreSQL beside the cluster
    ports = stack.ports.all()
    assert len(ports) == len(set(ports)), "two HA services share a port"
    assert not SHARED_PORTS & set(ports), "an HA port collides with the shared stack"
    assert not SHARED_PORTS & {stack.ports.api, stack.ports.worker_web}
    single = Stack(base)
    assert "kafka-1" not in single.services and single.layout.root == base.stack_path


def test_ha_settings_point_clients_at_every_node(base: Settings) -> None:
    ports = HaPorts(25000)
    settings = ha_settings(base, ports)
    assert settings.kafka_bootstrap_servers == "127.0.0.1:25000,127.0.0.1:25002,127.0.0.1:25004"
    assert settings.kafka_replication_factor == 3
    assert settings.redis_sentinels == "127.0.0.1:25012,127.0.0.1:25013,127.0.0.1:25014"
    assert settings.redis_url == "redis://127.0.0.1:25010/0"
    assert settings.s3_endpoint_url == "https://127.0.0.1:25020"
    assert settings.backup_s3_endpoint_url == "https://localhost:25020"  # the cert's DNS name
    ca = base.stack_path / "ha" / "conf" / "minio" / "certs" / "public.crt"
    assert settings.s3_ca_file == settings.backup_s3_ca_file == ca
    # Both data nodes (the monitor is +30), libpq picks the writable one.
    assert settings.database_url.startswith(
        "postgresql://memestream:memestream@127.0.0.1:25031,127.0.0.1:25032/"
    )
    assert settings.database_url.endswith("?target_session_attrs=read-write")
    # The same values reach child processes through the environment.
    env = ha_env(base, ports)
    from_env = Settings(**{name.lower(): value for name, value in env.items()})
    for name in env:
        assert getattr(from_env, name.lower()) == getattr(settings, name.lower()), name


def test_kafka_nodes_are_three_voters_with_replication_three(base: Settings) -> None:
    stack = HaStack(base, HaPorts(25000))
    node = stack.services["kafka-2"]
    assert isinstance(node, KafkaBroker)
    props = dict(
        line.split("=", 1) for line in node.server_properties().splitlines() if "=" in line
    )
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:25001,2@127.0.0.1:25003,3@127.0.0.1:25005"
    )
    assert "controller.quorum.bootstrap.servers" not in props
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["unclean.leader.election.enable"] == "false"


def test_single_node_kafka_stays_standalone(base: Settings) -> None:
    node = Stack(base).services["kafka"]
    assert isinstance(node, KafkaBroker)
    props = node.server_properties()
    assert "controller.quorum.bootstrap.servers=127.0.0.1:19093" in props
    assert "min.insync.replicas=1" in props and "controller.quorum.voters" not in props


def test_redis_replica_and_sentinels_watch_the_master(base: Settings) -> None:
    stack = HaStack(base, HaPorts(25000))
    replica = stack.services["redis-replica"]
    assert isinstance(replica, RedisServer)
    assert replica.command()[-3:] == ["--replicaof", "127.0.0.1", "25010"]
    sentinel = stack.services["sentinel-1"]
    assert isinstance(sentinel, SentinelServer)
    assert "sentinel monitor memestream 127.0.0.1 25010 2" in sentinel.config()
    assert sentinel.command()[-1] == "--sentinel"


def test_minio_runs_one_erasure_set_of_four_drives(base: Settings) -> None:
    minio = HaStack(base, HaPorts(25000)).services["minio"]
    assert isinstance(minio, ErasureMinioServer)
    assert isinstance(minio, TlsMinioServer)  # HTTPS, for pgBackRest
    assert minio.url == "https://127.0.0.1:25020"
    assert minio.drives() == [str(minio.data_dir / "d{1...4}")]  # MinIO's ellipsis syntax
    assert minio.port == 25020


def test_sentinel_addresses() -> None:
    assert sentinel_addresses("127.0.0.1:1, localhost:2") == [("127.0.0.1", 1), ("localhost", 2)]
    with pytest.raises(ValueError, match="host:port"):
        sentinel_addresses("127.0.0.1")


def test_stop_leaves_minio_for_last(base: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL archives its last WAL into MinIO while it shuts down."""
    stack = HaStack(base, HaPorts(25000))
    order: list[str] = []
    for service in stack.services.values():
        monkeypatch.setattr(
            service, "stop", lambda s=service: order.append(s.name) or s.status(), raising=True
        )
    stack.stop()
    assert order[-1] == "minio" and len(order) == len(stack.services)
