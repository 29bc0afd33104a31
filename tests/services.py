"""Where tests get their real services: the local stack, or testcontainers.

`TEST_SERVICES=local` (the default, and CI's: no Docker engine runs there) starts the
project's own stack on 127.0.0.1; `TEST_SERVICES=containers` starts the same services
as containers where a Docker engine exists. Either way the tests receive one
`Settings` whose URLs point at running services, and `memestream.testing.environment` hands
those URLs to the processes tests start.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict

from domain.settings import ServiceProvider, Settings, get_settings

if TYPE_CHECKING:
    from testcontainers.community.clickhouse import ClickHouseContainer
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.minio import MinioContainer
    from testcontainers.community.nats import NatsContainer
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer
    from testcontainers.core.container import DockerContainer

# testcontainers' KafkaContainer runs KRaft only on Confluent images (>= 7.0.0: it drives
# their /etc/confluent/docker scripts); 7.6.0 is the tag testcontainers itself tests KRaft on.
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
# The rest match docker-compose.yml, so both container paths run the same versions.
POSTGRES_IMAGE = "postgres:15"
REDIS_IMAGE = "redis:7"
MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:24.8"
NATS_IMAGE = "nats:2.10-alpine"
# The same Apicurio Registry version the local stack runs (memestream/stack/registry.py), with
# its default in-memory storage: a test run's schemas need not outlive it.
REGISTRY_IMAGE = "apicurio/apicurio-registry:3.0.9"
REGISTRY_PORT = 8080


@contextmanager
def local_stack(settings: Settings) -> Iterator[Settings]:
    from memestream.stack.stack import Stack

    Stack(settings).start(["kafka", "postgres", "registry", "redis", "minio", "nats"])
    yield settings


@dataclass(frozen=True, slots=True)
class ServiceContainers:
    """One container per store, configured but not started."""

    kafka: KafkaContainer
    postgres: PostgresContainer
    redis: RedisContainer
    minio: MinioContainer
    clickhouse: ClickHouseContainer
    nats: NatsContainer
    registry: DockerContainer

    def all(self) -> list[DockerContainer]:
        return [getattr(self, f.name) for f in fields(self)]


def build_containers(settings: Settings) -> ServiceContainers:
    """The containers, with the credentials the settings expect (nothing starts here)."""
    from testcontainers.community.clickhouse import ClickHouseContainer
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.minio import MinioContainer
    from testcontainers.community.nats import NatsContainer
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer
    from testcontainers.core.container import DockerContainer

    db = conninfo_to_dict(settings.database_url)
    kafka = (
        KafkaContainer(KAFKA_IMAGE)
        .with_kraft()
        # As the local broker: topics come only from the registry, one-node replication.
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
    )
    minio = (
        MinioContainer(
            MINIO_IMAGE, access_key=settings.s3_access_key, secret_key=settings.s3_secret_key
        )
        # testcontainers sets only MINIO_ACCESS_KEY/SECRET_KEY, which current MinIO ignores.
        .with_env("MINIO_ROOT_USER", settings.s3_access_key)
        .with_env("MINIO_ROOT_PASSWORD", settings.s3_secret_key)
        .with_env("MINIO_REGION", settings.s3_region)
    )
    return ServiceContainers(
        kafka=kafka,
        postgres=PostgresContainer(
            POSTGRES_IMAGE,
            username=str(db.get("user") or "memestream"),
            password=str(db.get("password") or "memestream"),
            dbname=str(db.get("dbname") or "memestream"),
            driver=None,
        ),
        redis=RedisContainer(REDIS_IMAGE),
        minio=minio,
        clickhouse=ClickHouseContainer(CLICKHOUSE_IMAGE),
        # The feed's NATS transport needs JetStream (`-js`).
        nats=NatsContainer(NATS_IMAGE, jetstream=True),
        registry=DockerContainer(REGISTRY_IMAGE).with_exposed_ports(REGISTRY_PORT),
    )


def _endpoint(container: DockerContainer, port: int) -> str:
    """`host:port` where the test process reaches a container's port."""
    return f"{container.get_container_host_ip()}:{container.get_exposed_port(port)}"


def container_settings(settings: Settings, c: ServiceContainers) -> Settings:
    """The settings with every store URL pointing at its (started) container."""
    pg = c.postgres
    return settings.model_copy(
        update={
            "kafka_bootstrap_servers": c.kafka.get_bootstrap_server(),
            "database_url": (
                f"postgresql://{quote(pg.username, safe='')}:{quote(pg.password, safe='')}"
                f"@{_endpoint(pg, pg.port)}/{quote(pg.dbname, safe='')}"
            ),
            "redis_url": f"redis://{_endpoint(c.redis, c.redis.port)}/0",
            "s3_endpoint_url": f"http://{_endpoint(c.minio, c.minio.port)}",
            "clickhouse_url": (
                f"http://{quote(c.clickhouse.username, safe='')}:"
                f"{quote(c.clickhouse.password, safe='')}@{_endpoint(c.clickhouse, 8123)}"
            ),
            "nats_url": f"nats://{_endpoint(c.nats, c.nats.client_port)}",
            "schema_registry_url": (
                f"http://{_endpoint(c.registry, REGISTRY_PORT)}/apis/ccompat/v7"
            ),
        }
    )


@contextmanager
def containers(settings: Settings) -> Iterator[Settings]:
    """Kafka, PostgreSQL, Redis, MinIO, ClickHouse, NATS and the schema registry in
    containers (needs Docker)."""
    built = build_containers(settings)
    with ExitStack() as stack:
        for container in built.all():
            stack.enter_context(container)
        from testcontainers.core.waiting_utils import wait_for_logs

        wait_for_logs(built.registry, "Listening on", timeout=120)  # Quarkus is serving
        yield container_settings(settings, built)


@contextmanager
def services(settings: Settings | None = None) -> Iterator[Settings]:
    settings = settings or get_settings()
    provider = containers if settings.test_services is ServiceProvider.CONTAINERS else local_stack
    with provider(settings) as ready:
        yield ready
