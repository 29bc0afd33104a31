"""The whole local stack: every store the platform needs, started and stopped together.

Services start in parallel (Kafka's JVM, PostgreSQL's initdb and a first MinIO build
overlap; the schema registry waits for PostgreSQL, its storage) and stop in reverse
order. Errors are collected so one broken service does not
hide the state of the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from domain.settings import Settings
from memestream.stack.chdb import ChdbStore
from memestream.stack.kafka import KafkaBroker
from memestream.stack.layout import StackLayout
from memestream.stack.minio import MinioServer
from memestream.stack.nats import NatsServer
from memestream.stack.postgres import PostgresServer
from memestream.stack.process import Service, ServiceError, Status
from memestream.stack.redis import RedisServer
from memestream.stack.registry import SchemaRegistryServer

SERVICE_NAMES: tuple[str, ...] = (
    "kafka",
    "postgres",
    "registry",
    "redis",
    "minio",
    "nats",
    "chdb",
)


class StackError(ServiceError):
    """One or more services failed; `statuses` still reports every service."""

    def __init__(self, errors: dict[str, BaseException], statuses: list[Status]) -> None:
        lines = [f"{name}: {err}" for name, err in errors.items()]
        super().__init__("\n".join(lines))
        self.errors = errors
        self.statuses = statuses


def layout_for(settings: Settings) -> StackLayout:
    return StackLayout(settings.stack_path, settings.resolved(settings.cache_dir))


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.layout = layout_for(settings)
        self.services: dict[str, Service] = {s.name: s for s in self.build()}

    def build(self) -> list[Service]:
        """The services, in start order (the replicated stack, ha.HaStack, has its own)."""
        return [
            KafkaBroker(self.settings, self.layout),
            PostgresServer(self.settings, self.layout),
            SchemaRegistryServer(self.settings, self.layout),
            RedisServer(self.settings, self.layout),
            MinioServer(self.settings, self.layout),
            NatsServer(self.settings, self.layout),
            ChdbStore(self.settings, self.layout),
        ]

    def select(self, names: Iterable[str] | None = None) -> list[Service]:
        """The named services in stack order (all of them for None or an empty list)."""
        wanted = list(names or [])
        unknown = sorted(set(wanted) - set(self.services))
        if unknown:
            raise ValueError(
                f"unknown service(s): {', '.join(unknown)}; known: {', '.join(self.services)}"
            )
        return [s for n, s in self.services.items() if not wanted or n in wanted]

    def _run(
        self,
        action: Callable[[Service], Status],
        services: Sequence[Service],
        parallel: bool,
    ) -> list[Status]:
        errors: dict[str, BaseException] = {}
        if parallel and len(services) > 1:
            with ThreadPoolExecutor(max_workers=len(services)) as pool:
                futures = {s.name: pool.submit(action, s) for s in services}
            for name, future in futures.items():
                if (err := future.exception()) is not None:
                    errors[name] = err
        else:
            for service in services:
                try:
                    action(service)
                except Exception as err:
                    errors[service.name] = err
        statuses = [s.status() for s in services]
        if errors:
            raise StackError(errors, statuses)
        return statuses

    def start(self, names: Iterable[str] | None = None) -> list[Status]:
        return self._run(lambda s: s.start(), self.select(names), parallel=True)

    def stop(self, names: Iterable[str] | None = None) -> list[Status]:
        services = list(reversed(self.select(names)))
        statuses = self._run(lambda s: s.stop(), services, parallel=False)
        return list(reversed(statuses))

    def status(self, names: Iterable[str] | None = None) -> list[Status]:
        services = self.select(names)
        with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
            return list(pool.map(lambda s: s.status(), services))
