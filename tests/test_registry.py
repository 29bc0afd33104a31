"""The schema registry's JDBC URL follows DATABASE_URL, multi-host (HA) URLs included."""

from __future__ import annotations

from memestream.stack.registry import REGISTRY_DB_SCHEMA, jdbc_url


def test_single_host_url() -> None:
    url = jdbc_url("postgresql://u:p@127.0.0.1:15432/memestream")
    assert url == f"jdbc:postgresql://127.0.0.1:15432/memestream?currentSchema={REGISTRY_DB_SCHEMA}"


def test_multi_host_url_keeps_every_host_and_follows_the_primary() -> None:
    url = jdbc_url(
        "postgresql://u:p@127.0.0.1:15441,127.0.0.1:15442/memestream"
        "?target_session_attrs=read-write"
    )
    assert url == (
        "jdbc:postgresql://127.0.0.1:15441,127.0.0.1:15442/memestream"
        f"?currentSchema={REGISTRY_DB_SCHEMA}&targetServerType=primary"
    )


def test_hosts_without_ports_get_the_default_port() -> None:
    url = jdbc_url("postgresql://u:p@10.0.0.1,10.0.0.2/memestream")
    assert url.startswith("jdbc:postgresql://10.0.0.1:5432,10.0.0.2:5432/memestream?")
