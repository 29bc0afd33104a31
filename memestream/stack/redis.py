"""Redis from Debian's `redis-server`, in the foreground so the stack supervises it.

Persistence is off (`--save ''`, no AOF): Redis only holds derived data (trending sets,
caches) that the platform rebuilds from Kafka and Postgres. The replicated stack
(memestream/stack/redis_sentinel.py) runs two of these, one a replica of the other.
"""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import redis

from domain.settings import Settings
from memestream.stack.layout import StackLayout
from memestream.stack.process import ManagedProcess, ServiceError


class RedisServer(ManagedProcess):
    stop_timeout = 10.0
    start_timeout = 30.0

    def __init__(
        self,
        settings: Settings,
        layout: StackLayout,
        name: str = "redis",
        *,
        port: int | None = None,
        replica_of: int | None = None,
    ) -> None:
        """`port` overrides REDIS_URL's; `replica_of` starts it as a replica of the server
        on that loopback port."""
        super().__init__(name, layout)
        self.redis_url = settings.redis_url
        parts = urlsplit(settings.redis_url)
        self._port = port or parts.port or 6379
        self._password = parts.password
        self.replica_of = replica_of

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    def command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server not found: apt-get install redis-server")
        argv = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self._port),
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            "",
        ]
        if self._password:
            argv += ["--requirepass", self._password, "--masterauth", self._password]
        if self.replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        return argv

    def check_health(self) -> bool:
        client = redis.Redis(
            host="127.0.0.1", port=self._port, password=self._password, socket_timeout=2
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
