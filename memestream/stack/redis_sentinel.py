"""Redis Sentinel: three watchers that promote the replica when the master dies.

Each Sentinel is Debian's `redis-server` binary in sentinel mode (`--sentinel`, what the
`redis-sentinel` package's binary is a link to), so the stack needs no package beyond
redis-server. Three Sentinels with a quorum of two: one Sentinel dying (or the machine's
load delaying one) neither blocks nor fakes a failover. A master unanswered for
`DOWN_AFTER_MS` is declared down and its replica promoted; clients find the new master by
asking the Sentinels (REDIS_SENTINELS, sinks/redis/client.py).

The configuration file is written once: Sentinel rewrites it with what it learns (current
master, replicas, other Sentinels, epoch), and a restarted Sentinel must keep that, not go
back to watching a master that was replaced.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import redis

from domain.settings import Settings
from memestream.stack.layout import StackLayout
from memestream.stack.process import ManagedProcess, ServiceError

QUORUM = 2
DOWN_AFTER_MS = 2000  # Sentinel's default is 30 s; loopback answers in well under 1 ms
FAILOVER_TIMEOUT_MS = 10_000


class SentinelServer(ManagedProcess):
    stop_timeout = 10.0
    start_timeout = 30.0

    def __init__(
        self, settings: Settings, layout: StackLayout, name: str, port: int, master_port: int
    ) -> None:
        super().__init__(name, layout)
        self._port = port
        self.master_port = master_port
        self.master_name = settings.redis_sentinel_master
        self._password = urlsplit(settings.redis_url).password

    @property
    def url(self) -> str:
        return f"sentinel://127.0.0.1:{self._port}/{self.master_name}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def conf_path(self) -> Path:
        return self.data_dir / "sentinel.conf"

    def config(self) -> str:
        name = self.master_name
        lines = [
            "# Generated once by memestream; Sentinel rewrites it with what it learns.",
            "bind 127.0.0.1",
            f"port {self._port}",
            "daemonize no",
            'logfile ""',
            f"dir {self.data_dir}",
            f"sentinel monitor {name} 127.0.0.1 {self.master_port} {QUORUM}",
            f"sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self._password:
            lines.append(f"sentinel auth-pass {name} {self._password}")
        return "\n".join(lines) + "\n"

    def prepare(self) -> None:
        if not self.conf_path.exists():
            self.conf_path.write_text(self.config())

    def command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server not found: apt-get install redis-server")
        return [binary, str(self.conf_path), "--sentinel"]

    def check_health(self) -> bool:
        """The Sentinel answers and names a master for our service."""
        client = redis.Redis(host="127.0.0.1", port=self._port, socket_timeout=2)
        try:
            master = client.execute_command("SENTINEL", "get-master-addr-by-name", self.master_name)
            return bool(master)
        finally:
            client.close()
