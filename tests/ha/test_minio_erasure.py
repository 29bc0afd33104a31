"""MinIO erasure-coded over four drives: with one drive's folder gone, every object reads back
intact and new objects can still be written."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator

import pytest
import urllib3
from minio import Minio, MinioAdmin
from minio.credentials import StaticProvider

from memestream.stack.ha import HaStack
from memestream.stack.minio_erasure import DRIVE_COUNT, TlsErasureMinioServer
from memestream.stack.process import wait_until
from tests.ha.support import started

pytestmark = [pytest.mark.ha, pytest.mark.slow]

SIZES = [1, 1000, 64 * 1024, 1024 * 1024 + 7, 6 * 1024 * 1024]  # inline, small and multi-block


@pytest.fixture(scope="module")
def minio_ha(ha_stack: HaStack) -> Iterator[TlsErasureMinioServer]:
    with started(ha_stack, ["minio"]) as stack:
        server = stack.services["minio"]
        assert isinstance(server, TlsErasureMinioServer)
        yield server


def read(client: Minio, bucket: str, name: str) -> bytes:
    response = client.get_object(bucket, name)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def online_drives(server: TlsErasureMinioServer) -> int:
    """How many drives MinIO itself reports online (its admin API's server info)."""
    admin = MinioAdmin(
        endpoint=f"127.0.0.1:{server.port}",
        credentials=StaticProvider(server.access_key, server.secret_key),
        secure=True,
        http_client=urllib3.PoolManager(ca_certs=str(server.ca_file)),
    )
    info = json.loads(admin.info())
    drives = [d for srv in info.get("servers", []) for d in srv.get("drives", [])]
    return sum(1 for d in drives if d.get("state") == "ok")


def test_one_lost_drive_loses_no_object(minio_ha: TlsErasureMinioServer) -> None:
    """Each drive in turn (a data shard of some object is on every drive): its folder is
    moved away, every object still reads back intact and a new object can be written."""
    client, bucket = minio_ha.client(), minio_ha.bucket
    objects = {f"ha/object-{i}": os.urandom(size) for i, size in enumerate(SIZES)}
    for name, data in objects.items():
        client.put_object(bucket, name, io.BytesIO(data), len(data))
    drives = minio_ha.drive_paths()
    assert len(drives) == DRIVE_COUNT
    for drive in drives:  # striped: every drive holds a part of every object
        assert all((drive / bucket / name / "xl.meta").exists() for name in objects), drive

    for lost in drives:
        wait_until(
            lambda: online_drives(minio_ha) == DRIVE_COUNT, 90, what="MinIO: every drive online"
        )
        hidden = lost.with_name(lost.name + ".lost")
        lost.rename(hidden)
        try:
            for name, data in objects.items():
                got = read(client, bucket, name)
                assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), name
            late = os.urandom(100_000)
            client.put_object(bucket, f"ha/without-{lost.name}", io.BytesIO(late), len(late))
            assert read(client, bucket, f"ha/without-{lost.name}") == late
        finally:
            hidden.rename(lost)
    print(f"\nHA minio_drive_loss: {len(objects)} objects intact without any one of the drives")
