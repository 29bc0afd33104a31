"""MinIO erasure-coded over four drives of one server: the replicated stack's object store.

`minio server <data>/d{1...4}` stripes every object over four drives with two parity shards
(MinIO's default for four drives, EC:2), so any one drive can be lost, or two for reads,
and every object still reads back intact; MinIO heals a replaced drive in the background.
The four drives are four folders of one disk here: that exercises the erasure coding and
the drive-loss path, not a disk's failure modes. `MINIO_CI_CD` lets MinIO use folders on
the root disk, which it otherwise refuses as drives.
"""

from __future__ import annotations

from pathlib import Path

from memestream.stack.minio import MinioServer
from memestream.stack.minio_tls import TlsMinioServer

DRIVE_COUNT = 4


class ErasureMinioServer(MinioServer):
    def drive_paths(self) -> list[Path]:
        return [self.data_dir / f"d{i}" for i in range(1, DRIVE_COUNT + 1)]

    def drives(self) -> list[str]:
        """MinIO's ellipsis notation: one erasure set of DRIVE_COUNT drives."""
        return [str(self.data_dir / f"d{{1...{DRIVE_COUNT}}}")]

    def prepare(self) -> None:
        super().prepare()
        for drive in self.drive_paths():
            drive.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        return {**super().env(), "MINIO_CI_CD": "on"}


class TlsErasureMinioServer(TlsMinioServer, ErasureMinioServer):
    """The replicated stack's MinIO: four erasure-coded drives, served over HTTPS (so
    pgBackRest can back PostgreSQL up into it)."""
