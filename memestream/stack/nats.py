"""NATS from Debian's `nats-server`, with JetStream, for the live feed's fan-out.

The health check speaks the NATS protocol itself (INFO, CONNECT, PING -> PONG) and also
requires the server to announce JetStream, so a server without it counts as unhealthy.
"""

from __future__ import annotations

import json
import shutil
import socket

from domain.settings import Settings
from memestream.stack.health import host_port
from memestream.stack.layout import StackLayout
from memestream.stack.process import ManagedProcess, ServiceError


def nats_ping(host: str, port: int, timeout: float = 2.0) -> dict[str, object]:
    """One NATS protocol round trip; returns the server's INFO when it answers PONG."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        reader = sock.makefile("rb")
        line = reader.readline()
        if not line.startswith(b"INFO "):
            raise ConnectionError(f"not a NATS server: {line[:40]!r}")
        info: dict[str, object] = json.loads(line[5:])
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        reply = reader.readline()
        if reply.strip() != b"PONG":
            raise ConnectionError(f"unexpected NATS reply: {reply[:40]!r}")
        return info


class NatsServer(ManagedProcess):
    stop_timeout = 10.0
    start_timeout = 30.0

    def __init__(self, settings: Settings, layout: StackLayout) -> None:
        super().__init__("nats", layout)
        _, self._port = host_port(settings.nats_url, 4222)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    def command(self) -> list[str]:
        binary = shutil.which("nats-server")
        if binary is None:
            raise ServiceError("nats-server not found: run `make up` (apt-get install nats-server)")
        return [
            binary,
            "--addr",
            "127.0.0.1",
            "--port",
            str(self._port),
            "--server_name",
            "memestream",
            "--jetstream",
            "--store_dir",
            str(self.data_dir),
        ]

    def check_health(self) -> bool:
        info = nats_ping("127.0.0.1", self._port)
        return bool(info.get("jetstream"))
