"""A MinIO that serves HTTPS with a self-signed certificate made at its first start, for
pgBackRest (which reaches S3 only over TLS): the replicated stack's MinIO, the `ha` tests'
and benchmarks/ha_restore.py's. Clients trust that certificate (`S3_CA_FILE`,
`BACKUP_S3_CA_FILE`: `ca_file`); it names `localhost` (pgBackRest checks DNS names only)
and 127.0.0.1."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx
import urllib3
from minio import Minio

from memestream.stack.layout import StackLayout
from memestream.stack.minio import MinioServer


class TlsMinioServer(MinioServer):
    """MinioServer with `public.crt`/`private.key` in its certs folder (so it serves HTTPS)."""

    @staticmethod
    def certs_in(layout: StackLayout, name: str) -> Path:
        """The certificate a MinIO named `name` serves (and clients trust) in `layout`."""
        return layout.conf(name) / "certs" / "public.crt"

    @property
    def certs_dir(self) -> Path:
        return self.layout.conf(self.name) / "certs"

    @property
    def ca_file(self) -> Path:
        return self.certs_dir / "public.crt"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        super().prepare()
        self.certs_dir.mkdir(parents=True, exist_ok=True)
        if not self.ca_file.exists():
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "3650",
                    "-subj",
                    "/CN=localhost",
                    "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout",
                    str(self.certs_dir / "private.key"),
                    "-out",
                    str(self.ca_file),
                ],
                check=True,
                capture_output=True,
            )

    def check_health(self) -> bool:
        response = httpx.get(
            f"{self.url}/minio/health/live",
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            timeout=2,
        )
        return response.status_code == 200

    def client(self) -> Minio:
        return Minio(
            f"127.0.0.1:{self.port}",
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=True,
            region=self.region,
            http_client=urllib3.PoolManager(ca_certs=str(self.ca_file)),
        )
