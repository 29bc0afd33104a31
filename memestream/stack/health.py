"""Small, dependency-light probes shared by the services' health checks.

A TCP connect first keeps the real protocol checks (which may log or block on a dead
port) off services that are plainly down.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True if GET url answers 2xx."""
    try:
        return httpx.get(url, timeout=timeout).is_success
    except httpx.HTTPError:
        return False


def host_port(address: str, default_port: int) -> tuple[str, int]:
    """Split `host:port` or a URL into its host and port."""
    if "://" not in address:
        address = f"tcp://{address}"
    parts = urlsplit(address)
    return parts.hostname or "127.0.0.1", parts.port or default_port
