"""MinIO, the S3-compatible object store, built from source with `go install`.

MinIO no longer tags releases for `go install`; `@latest` resolves to a pseudo-version,
so we pin the one we tested (`MINIO_MODULE_VERSION`) for reproducible builds. The binary
is built once into `<cache>/bin/minio` (with its version beside it in `minio.version`);
a binary of the same version already in `$GOPATH/bin` is copied instead of rebuilt.
The server keeps its objects in `<stack>/data/minio`; the bucket from settings is
created on start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from minio import Minio
from tenacity import Retrying, stop_after_delay, wait_fixed

from domain.settings import Settings
from memestream.stack.health import http_ok
from memestream.stack.layout import StackLayout
from memestream.stack.process import ManagedProcess, ServiceError, file_lock, tail

MINIO_MODULE = "github.com/minio/minio"
MINIO_MODULE_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"  # what @latest resolved to
BUILD_TIMEOUT_S = 3600


def _built_version(binary: Path, go: str) -> str | None:
    """The module version Go recorded in a binary (`go version -m`)."""
    done = subprocess.run(
        [go, "version", "-m", str(binary)], capture_output=True, text=True, check=False
    )
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "mod" and fields[1] == MINIO_MODULE:
            return fields[2]
    return None


def minio_binary(cache_dir: Path) -> Path:
    """The pinned MinIO server binary, building it at most once per version."""
    bindir = cache_dir / "bin"
    binary = bindir / "minio"
    stamp = bindir / "minio.version"

    def ready() -> bool:
        built = stamp.read_text().strip() if stamp.exists() else None
        return binary.exists() and built == MINIO_MODULE_VERSION

    if ready():
        return binary
    bindir.mkdir(parents=True, exist_ok=True)
    with file_lock(bindir / ".minio.lock"):
        if ready():
            return binary
        go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
        if go is None:
            raise ServiceError("Go not found: MinIO is built with `go install` (Go 1.24+ needed)")
        gopath = subprocess.run(
            [go, "env", "GOPATH"], capture_output=True, text=True, check=False
        ).stdout.strip()
        prebuilt = Path(gopath.split(os.pathsep)[0]) / "bin" / "minio" if gopath else None
        if prebuilt and prebuilt.exists() and _built_version(prebuilt, go) == MINIO_MODULE_VERSION:
            shutil.copy2(prebuilt, bindir / "minio.partial")
            (bindir / "minio.partial").replace(binary)
        else:
            log = cache_dir / "minio-build.log"
            with log.open("wb") as out:
                try:
                    done = subprocess.run(
                        [go, "install", f"{MINIO_MODULE}@{MINIO_MODULE_VERSION}"],
                        env={**os.environ, "GOBIN": str(bindir), "CGO_ENABLED": "0"},
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        timeout=BUILD_TIMEOUT_S,
                        check=False,
                    )
                except subprocess.TimeoutExpired as exc:
                    raise ServiceError(f"building MinIO timed out; see {log}") from exc
            if done.returncode != 0:
                raise ServiceError(f"building MinIO failed; end of {log}:\n{tail(log)}")
        stamp.write_text(MINIO_MODULE_VERSION + "\n")
    return binary


class MinioServer(ManagedProcess):
    start_timeout = 60.0
    stop_timeout = 20.0

    def __init__(
        self, settings: Settings, layout: StackLayout, name: str = "minio", port: int | None = None
    ) -> None:
        """`port` overrides S3_ENDPOINT_URL's (the console takes the next port)."""
        super().__init__(name, layout)
        endpoint = urlsplit(settings.s3_endpoint_url)
        self._port = port or endpoint.port or 9000
        self.console_port = self._port + 1
        self.access_key = settings.s3_access_key
        self.secret_key = settings.s3_secret_key
        self.bucket = settings.s3_bucket
        self.region = settings.s3_region
        self.cache_dir = settings.cache_dir

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    def prepare(self) -> None:
        minio_binary(self.cache_dir)
        self.layout.conf(self.name).mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [
            str(minio_binary(self.cache_dir)),
            "server",
            "--address",
            f"127.0.0.1:{self._port}",
            "--console-address",
            f"127.0.0.1:{self.console_port}",
            "--certs-dir",
            str(self.layout.conf(self.name) / "certs"),
            *self.drives(),
        ]

    def drives(self) -> list[str]:
        """Where the objects are: one folder here; several for erasure coding."""
        return [str(self.data_dir)]

    def env(self) -> dict[str, str]:
        return {
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_REGION": self.region,
            "MINIO_UPDATE": "off",
            "MINIO_BROWSER_REDIRECT": "off",
        }

    def check_health(self) -> bool:
        return http_ok(f"{self.url}/minio/health/live")

    def client(self) -> Minio:
        return Minio(
            f"127.0.0.1:{self._port}",
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=self.region,
        )

    def after_start(self) -> None:
        """Create the bucket; retried because MinIO is live a moment before it serves S3."""
        client = self.client()
        for attempt in Retrying(stop=stop_after_delay(30), wait=wait_fixed(0.5), reraise=True):
            with attempt:
                if not client.bucket_exists(self.bucket):
                    client.make_bucket(self.bucket)
