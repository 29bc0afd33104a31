"""MinIO or any S3-compatible store, through the MinIO client."""

from __future__ import annotations

import io
from datetime import timedelta
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error

from domain.settings import Settings
from sinks.storage.base import ObjectNotFound, StoredObject


class S3ObjectStore:
    def __init__(self, settings: Settings) -> None:
        url = urlsplit(settings.s3_endpoint_url)
        self.bucket = settings.s3_bucket
        self.client = Minio(
            url.netloc,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=url.scheme == "https",
            region=settings.s3_region,
            http_client=urllib3.PoolManager(
                ca_certs=str(settings.s3_ca_file) if settings.s3_ca_file else None,
                maxsize=32,
                timeout=urllib3.Timeout(connect=2.0, read=10.0),
                retries=urllib3.Retry(total=2, backoff_factor=0.2),
            ),
        )

    def ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    def put(self, key: str, data: bytes, content_type: str) -> str:
        result = self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )
        return result.etag or ""

    def get(self, key: str) -> StoredObject:
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject"}:
                raise ObjectNotFound(key) from exc
            raise
        try:
            data = response.read()
            return StoredObject(
                key=key,
                data=data,
                content_type=response.headers.get("Content-Type", "application/octet-stream"),
                etag=(response.headers.get("ETag") or "").strip('"') or None,
            )
        finally:
            response.close()
            response.release_conn()

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, key)

    def presigned_url(self, key: str, expires: timedelta) -> str | None:
        return self.client.presigned_get_object(self.bucket, key, expires=expires)
