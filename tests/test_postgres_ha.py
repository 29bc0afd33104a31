"""The HA cluster's ports and the multi-host DATABASE_URL that follows its primary."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict

from domain.settings import Settings
from memestream.stack.postgres_ha import ha_database_url, ha_ports


def test_ports_follow_postgres_ha_port() -> None:
    assert ha_ports(Settings(postgres_ha_port=25440)) == (25440, [25441, 25442])


def test_url_lists_every_data_node_and_wants_the_writable_one() -> None:
    settings = Settings(
        postgres_ha_port=25440, database_url="postgresql://app:s3cret@127.0.0.1:15432/memes"
    )
    url = ha_database_url(settings)
    assert url == (
        "postgresql://app:s3cret@127.0.0.1:25441,127.0.0.1:25442/memes"
        "?target_session_attrs=read-write"
    )
    params = conninfo_to_dict(url)
    assert params["host"] == "127.0.0.1,127.0.0.1"
    assert params["port"] == "25441,25442"
    assert params["target_session_attrs"] == "read-write"
    # libpq (through psycopg) accepts it as one conninfo with two attempts.
    assert len(psycopg.conninfo.conninfo_attempts(params)) == 2
