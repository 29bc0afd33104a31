"""The replicated stack (`--ha`): every store the platform needs, able to lose one node.

It runs beside the single-node stack, never instead of it: its own folder
(`<stack>/ha/`: data, logs, pid files) and its own ports, a block from `HA_BASE_PORT`
(offsets in `HaPorts`). Kafka is three KRaft nodes (kafka_cluster.py), Redis a master, a
replica and three Sentinels (redis_sentinel.py), MinIO four erasure-coded drives served
over HTTPS (minio_erasure.py, minio_tls.py), PostgreSQL a pg_auto_failover monitor, primary
and standby (postgres_ha.py) with the schema registry on it, WAL archived by pgBackRest into
that MinIO (backup.py, set up once both are running). NATS and chDB are single instances;
each part is one entry of `HA_SERVICES`, so replacing one is replacing its entry.

`ha_settings` gives the settings clients use against it (all three bootstrap servers,
replication factor 3, the Sentinels, the multi-host DATABASE_URL, HTTPS S3 and its CA);
`ha_env` the same as environment variables, for the
API and workers `memestream up --ha` starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from domain.settings import Settings
from memestream.stack.backup import PgBackRest
from memestream.stack.chdb import ChdbStore
from memestream.stack.ha_apps import API_REPLICAS
from memestream.stack.kafka_cluster import NODE_COUNT, bootstrap_servers, kafka_cluster
from memestream.stack.layout import StackLayout
from memestream.stack.minio_erasure import TlsErasureMinioServer
from memestream.stack.minio_tls import TlsMinioServer
from memestream.stack.nats import NatsServer
from memestream.stack.postgres_ha import DataNode, ha_database_url, postgres_ha_services
from memestream.stack.process import Service, Status
from memestream.stack.redis import RedisServer
from memestream.stack.redis_sentinel import SentinelServer
from memestream.stack.registry import SchemaRegistryServer
from memestream.stack.stack import Stack

HA_BASE_PORT = 29000
# How long a producer waits for acks=all on the HA stack. A SIGKILLed leader or follower
# holds acks=all writes until the controller fences it (broker.session.timeout.ms, 6 s,
# plus an election when it was the controller); a delivery timeout shorter than that turns a
# failover into errors, and worse, into duplicates: librdkafka's idempotent producer bumps
# its epoch after an in-flight request times out and resends what the broker had already
# written (seen in tests/ha at the single-node default of 5 s).
HA_DELIVERY_TIMEOUT_MS = 20_000
#: Seconds a worker's consumer-group session outlives the worker (see ha_overrides).
HA_SESSION_TIMEOUT_S = 10.0
SENTINEL_COUNT = 3


@dataclass(frozen=True, slots=True)
class HaPorts:
    """The HA stack's ports, each service a fixed offset from one base (a test picks a free
    base): Kafka +0..+5 (broker, controller per node), Redis +10..+14, MinIO +20..+21,
    PostgreSQL +30..+39, registry +40..+41, NATS +42, API replicas +44..+45, API (HAProxy)
    +50, workers' web ports +52..+59."""

    base: int = HA_BASE_PORT

    @property
    def kafka(self) -> int:
        return self.base

    @property
    def redis_master(self) -> int:
        return self.base + 10

    @property
    def redis_replica(self) -> int:
        return self.base + 11

    @property
    def sentinels(self) -> list[int]:
        return [self.base + 12 + i for i in range(SENTINEL_COUNT)]

    @property
    def minio(self) -> int:
        return self.base + 20

    @property
    def postgres(self) -> int:
        return self.base + 30

    @property
    def registry(self) -> int:
        return self.base + 40

    @property
    def nats(self) -> int:
        return self.base + 42

    @property
    def api(self) -> int:
        """HAProxy's: the API's public port."""
        return self.base + 50

    @property
    def api_replicas(self) -> list[int]:
        return [self.base + 44 + i for i in range(API_REPLICAS)]

    @property
    def worker_web(self) -> int:
        return self.base + 52

    def all(self) -> list[int]:
        """Every port the stack binds, for a test to check they are free."""
        kafka = [self.kafka + i for i in range(2 * NODE_COUNT)]
        return [
            *kafka,
            self.redis_master,
            self.redis_replica,
            *self.sentinels,
            self.minio,
            self.minio + 1,
            self.postgres,
            self.postgres + 1,
            self.postgres + 2,
            self.registry,
            self.registry + 1,
            self.nats,
        ]


def _with_port(url: str, port: int) -> str:
    """The URL on 127.0.0.1:port, keeping its scheme, credentials, path and query."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def ha_overrides(settings: Settings, ports: HaPorts) -> dict[str, object]:
    """The settings that differ on the HA stack, by field name."""
    root = settings.stack_path / "ha"
    ca_file = TlsMinioServer.certs_in(StackLayout(root, settings.cache_dir), "minio")
    pg = settings.model_copy(update={"postgres_ha_port": ports.postgres})
    registry = settings.schema_registry_url or "http://127.0.0.1:18081/apis/ccompat/v7"
    return {
        "stack_dir": root,
        "kafka_bootstrap_servers": bootstrap_servers(ports.kafka),
        "kafka_replication_factor": NODE_COUNT,
        "kafka_delivery_timeout_ms": max(
            settings.kafka_delivery_timeout_ms, HA_DELIVERY_TIMEOUT_MS
        ),
        # A dead worker's partitions wait this long for it: the default, 60 s, made a render
        # worker's death the slowest failover of all.
        "kafka_session_timeout_s": min(settings.kafka_session_timeout_s, HA_SESSION_TIMEOUT_S),
        "redis_url": _with_port(settings.redis_url, ports.redis_master),
        "redis_sentinels": ",".join(f"127.0.0.1:{p}" for p in ports.sentinels),
        "s3_endpoint_url": f"https://127.0.0.1:{ports.minio}",
        "s3_ca_file": ca_file,
        "backup_s3_endpoint_url": f"https://localhost:{ports.minio}",
        "backup_s3_ca_file": ca_file,
        "postgres_ha_port": ports.postgres,
        "database_url": ha_database_url(pg),
        "schema_registry_url": _with_port(registry, ports.registry),
        "nats_url": _with_port(settings.nats_url, ports.nats),
        "feed_transport": "nats",  # the feed fanned out to both API replicas (ha_apps.py)
        "clickhouse_url": f"chdb://{root / 'data' / 'chdb'}",
        "worker_data_dir": root / "data" / "workers",
        "api_port": ports.api,
        "worker_web_port": ports.worker_web,
    }


def ha_settings(settings: Settings, ports: HaPorts) -> Settings:
    return settings.model_copy(update=ha_overrides(settings, ports))


def ha_env(settings: Settings, ports: HaPorts) -> dict[str, str]:
    """The HA settings as the environment variables child processes read."""
    return {name.upper(): str(value) for name, value in ha_overrides(settings, ports).items()}


#: How each part of the HA stack is built from its settings, layout and ports; in start order.
HaServices = Callable[[Settings, StackLayout, HaPorts], list[Service]]


def kafka_services(settings: Settings, layout: StackLayout, ports: HaPorts) -> list[Service]:
    return list(kafka_cluster(settings, layout, ports.kafka))


def postgres_services(settings: Settings, layout: StackLayout, ports: HaPorts) -> list[Service]:
    """The pg_auto_failover cluster (monitor, two data nodes), then the registry on it."""
    return [*postgres_ha_services(settings, layout), SchemaRegistryServer(settings, layout)]


def redis_services(settings: Settings, layout: StackLayout, ports: HaPorts) -> list[Service]:
    master, replica = ports.redis_master, ports.redis_replica
    return [
        RedisServer(settings, layout, "redis-master", port=master),
        RedisServer(settings, layout, "redis-replica", port=replica, replica_of=master),
        *(
            SentinelServer(settings, layout, f"sentinel-{i + 1}", port, master)
            for i, port in enumerate(ports.sentinels)
        ),
    ]


def minio_services(settings: Settings, layout: StackLayout, ports: HaPorts) -> list[Service]:
    return [TlsErasureMinioServer(settings, layout, port=ports.minio)]


def other_services(settings: Settings, layout: StackLayout, ports: HaPorts) -> list[Service]:
    return [NatsServer(settings, layout), ChdbStore(settings, layout)]


HA_SERVICES: list[HaServices] = [
    kafka_services,
    postgres_services,
    redis_services,
    minio_services,
    other_services,
]


class HaStack(Stack):
    """`Stack` (start in parallel, stop in reverse, per-service errors) over HA_SERVICES."""

    def __init__(self, settings: Settings, ports: HaPorts | None = None) -> None:
        self.ports = ports or HaPorts(settings.ha_base_port)
        super().__init__(ha_settings(settings, self.ports))

    def build(self) -> list[Service]:
        return [
            service
            for part in HA_SERVICES
            for service in part(self.settings, self.layout, self.ports)
        ]

    def start(self, names: Iterable[str] | None = None) -> list[Status]:
        """Everything in parallel, then WAL archiving into MinIO once both run (idempotent)."""
        statuses = super().start(names)
        nodes = [s for s in self.select(names) if isinstance(s, DataNode)]
        if nodes and "minio" in {s.name for s in self.select(names)}:
            self.backrest().setup()
        return statuses

    def backrest(self) -> PgBackRest:
        nodes = [s for s in self.services.values() if isinstance(s, DataNode)]
        return PgBackRest(self.settings, self.layout, nodes)

    def stop(self, names: Iterable[str] | None = None) -> list[Status]:
        """In parallel (the last Kafka node stopped alone would wait out its controlled
        shutdown, 45 s, for a quorum that its peers, stopped before it, no longer form),
        MinIO last: PostgreSQL archives its last WAL into it while it shuts down."""
        services = self.select(names)
        first = [s for s in services if not isinstance(s, TlsMinioServer)]
        last = [s for s in services if isinstance(s, TlsMinioServer)]
        stopped: list[Status] = []
        try:
            stopped += self._run(lambda s: s.stop(), first, parallel=True)
        finally:  # MinIO stops even when another service failed to
            stopped += self._run(lambda s: s.stop(), last, parallel=True)
        by_name = {st.name: st for st in stopped}
        return [by_name[s.name] for s in services]
