"""Object storage for image bytes, behind one interface: MinIO/S3 or a plain folder."""

from sinks.storage.base import ObjectNotFound, ObjectStore, StoredObject
from sinks.storage.factory import object_store

__all__ = ["ObjectNotFound", "ObjectStore", "StoredObject", "object_store"]
