"""HAProxy's generated config: valid for Debian's haproxy, loopback only, checks `/ready`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from memestream.stack.haproxy import HAPROXY, haproxy_config


def test_config_balances_the_replicas_and_checks_ready() -> None:
    text = haproxy_config(29050, [("api-1", 29044), ("api-2", 29045)])
    assert "bind 127.0.0.1:29050" in text
    assert "server api-1 127.0.0.1:29044 check" in text
    assert "server api-2 127.0.0.1:29045 check" in text
    assert "option httpchk GET /ready" in text
    assert "retry-on conn-failure" in text  # never a retry of a request a replica received
    binds = [line.split()[1] for line in text.splitlines() if line.strip().startswith("bind")]
    assert all(b.startswith("127.0.0.1:") for b in binds)


@pytest.mark.skipif(not HAPROXY.exists(), reason="apt-get install haproxy")
def test_haproxy_accepts_the_config(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(29050, [("api-1", 29044), ("api-2", 29045)]))
    done = subprocess.run(
        [str(HAPROXY), "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
