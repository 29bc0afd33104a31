"""Our schemas in the schema registry: subjects, registration, compatibility, cached ids.

Every topic's value schema lives under the subject `<topic>-value` (Confluent's
TopicNameStrategy, what kcat, Kafka Connect, ClickHouse's `AvroConfluent`, Flink and Spark
look up), with BACKWARD_TRANSITIVE compatibility by default: the newest schema reads every
older one, which is what our codec does when it resolves an old writer into the newest
reader. Versions are registered oldest first, so the registry's history is `schemas/`'s.

`SchemaIds` is what a process keeps: the registry's id of each of our schema versions
(fingerprint -> id, for writing) and the writer schema of each id seen (id -> version, for
reading), both cached for the life of the process, since an id never changes meaning. Every
registry call has a time limit; after a failure the registry is not asked again for
`RETRY_AFTER_S`, so an outage costs callers a fast `SchemaUnavailable`, not a wait each.
The client is confluent-kafka's `SchemaRegistryClient` (the same one its serializers use).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from producers.topics import TOPICS

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from producers.serialization import SchemaRegistry, SchemaVersion

RETRY_AFTER_S = 1.0
CONFLICT = 409
NOT_FOUND = 404


class SchemaUnavailable(RuntimeError):
    """The registry did not answer (or refused) and the schema's id is not cached: nothing
    may be produced with it. `retry_after_s` is how soon asking again makes sense."""

    def __init__(self, message: str, retry_after_s: float = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnknownSchemaId(LookupError):
    """The registry answered that no schema has this id: the message cannot be read, ever."""


class SchemaRejected(SchemaUnavailable):
    """The registry refused a schema version as incompatible with the subject's history."""


def subject_for(topic: str) -> str:
    return f"{topic}-value"


def topic_of_schema(name: str) -> str:
    """The topic whose values are events of this schema (one topic per schema)."""
    for spec in TOPICS:
        if spec.value_schema == name:
            return spec.name
    raise KeyError(f"no topic carries {name}")


def registry_client(url: str, timeout_s: float) -> SchemaRegistryClient:
    """confluent-kafka's client with a time limit on every call (its default is none) and
    one quick retry (its default retries three times over up to 20 s)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient(
        {
            "url": url,
            "timeout": timeout_s,
            "max.retries": 1,
            "retries.wait.ms": 100,
            "retries.max.wait.ms": 300,
        }
    )


def schema_text(version: SchemaVersion) -> str:
    """The registered text: the `.avsc` file's JSON, compact (defaults kept: the canonical
    form drops them, and compatibility is decided on them)."""
    return version.text or str(to_parsing_canonical_form(version.parsed))


def versions_in_order(local: SchemaRegistry, name: str) -> list[SchemaVersion]:
    return sorted((v for v in local.by_fingerprint.values() if v.name == name), key=_version)


def _version(v: SchemaVersion) -> int:
    return v.version


@dataclass(frozen=True, slots=True)
class SubjectReport:
    """What `memestream schemas check|register` found for one subject."""

    subject: str
    compatible: bool
    registered: list[str] = field(default_factory=list)  # versions already in the registry
    new: list[str] = field(default_factory=list)  # compatible versions not registered yet
    refused: list[str] = field(default_factory=list)  # incompatible: "Name.vN: why"


class SchemaIds:
    """The registry's ids of our schema versions and the writer schemas of ids read."""

    def __init__(
        self,
        url: str,
        local: SchemaRegistry,
        *,
        timeout_s: float = 2.0,
        compatibility: str = "BACKWARD_TRANSITIVE",
        register: bool = True,
        client: SchemaRegistryClient | None = None,
    ) -> None:
        self.url = url
        self.local = local
        self.compatibility = compatibility
        self.register = register
        self._client = client or registry_client(url, timeout_s)
        self._ids: dict[bytes, int] = {}
        self._writers: dict[int, SchemaVersion] = {}
        self._rejected: dict[str, SchemaRejected] = {}
        self._lock = threading.Lock()
        self._failed_at = float("-inf")

    # Writing.

    def cached_id(self, version: SchemaVersion) -> int | None:
        return self._ids.get(version.fingerprint)

    def id_for(self, version: SchemaVersion) -> int:
        """The id to write `version` under; asks the registry once (every version of its
        schema, oldest first), then never again."""
        found = self._ids.get(version.fingerprint)
        if found is not None:
            return found
        self.resolve([version.name])
        return self._ids[version.fingerprint]

    def resolve(self, names: Iterable[str] | None = None) -> None:
        """Registers (or looks up, with `register=False`) every version of the named schemas,
        all of ours by default. Raises SchemaUnavailable or SchemaRejected."""
        wanted = sorted(set(names) if names is not None else set(self.local.latest))
        with self._lock:
            for name in wanted:
                if all(v.fingerprint in self._ids for v in versions_in_order(self.local, name)):
                    continue
                if name in self._rejected:  # refused for good (until a restart asks again)
                    raise self._rejected[name]
                self._guard()
                try:
                    self._resolve_one(name)
                except SchemaRejected as exc:
                    self._rejected[name] = exc
                    raise
                except SchemaUnavailable:
                    self._failed_at = time.monotonic()
                    raise

    def _resolve_one(self, name: str) -> None:
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        subject = subject_for(topic_of_schema(name))
        versions = versions_in_order(self.local, name)
        try:
            if self.register:
                self._client.set_compatibility(subject, self.compatibility)
            for version in versions:
                schema = Schema(schema_text(version), "AVRO")
                if self.register:
                    schema_id = self._client.register_schema(subject, schema)
                else:
                    schema_id = self._client.lookup_schema(subject, schema).schema_id
                self._ids[version.fingerprint] = int(schema_id)
                self._writers[int(schema_id)] = version
        except SchemaRegistryError as exc:
            if exc.http_status_code == CONFLICT:
                raise SchemaRejected(f"{subject}: {name} refused: {exc.error_message}") from exc
            raise SchemaUnavailable(f"{subject}: registry answered {exc}") from exc
        except Exception as exc:  # httpx transport errors, timeouts
            raise SchemaUnavailable(f"{subject}: registry unreachable: {exc!r}") from exc

    def _guard(self) -> None:
        waited = time.monotonic() - self._failed_at
        if waited < RETRY_AFTER_S:
            raise SchemaUnavailable(
                f"schema registry at {self.url} failed {waited:.1f}s ago",
                retry_after_s=RETRY_AFTER_S - waited,
            )

    # Reading.

    def writer(self, schema_id: int) -> SchemaVersion:
        """The writer schema of an id: cached, else fetched once from the registry and
        matched to our version of it by fingerprint (a version we do not have, from a newer
        producer, is kept as it came and resolved into our newest by Avro's rules)."""
        found = self._writers.get(schema_id)
        if found is not None:
            return found
        with self._lock:
            if (found := self._writers.get(schema_id)) is not None:
                return found
            self._guard()
            from confluent_kafka.schema_registry.error import SchemaRegistryError

            try:
                text = self._client.get_schema(schema_id).schema_str
            except SchemaRegistryError as exc:
                if exc.http_status_code == NOT_FOUND:
                    raise UnknownSchemaId(f"no schema has id {schema_id}") from exc
                self._failed_at = time.monotonic()
                raise SchemaUnavailable(f"schema id {schema_id}: {exc}") from exc
            except Exception as exc:  # transport errors, timeouts
                self._failed_at = time.monotonic()
                raise SchemaUnavailable(f"schema id {schema_id}: {exc!r}") from exc
            version = self._version_of(json.loads(text or "null"))
            self._writers[schema_id] = version
            return version

    def _version_of(self, schema: Any) -> SchemaVersion:
        from producers.serialization import SchemaVersion

        parsed = parse_schema(schema)
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
        known = self.local.by_fingerprint.get(fp)
        if known is not None:
            return known
        name = str(parsed.get("name", "")).rsplit(".", 1)[-1] if isinstance(parsed, dict) else ""
        return SchemaVersion(name, 0, parsed, fp, json.dumps(schema, separators=(",", ":")))


def check_subjects(
    client: SchemaRegistryClient, local: SchemaRegistry, *, register: bool, compatibility: str
) -> list[SubjectReport]:
    """Compares `schemas/` with the registry, subject by subject: which versions it has,
    which are new and compatible, which it would refuse. With `register`, sets each subject's
    compatibility and registers the new compatible versions, oldest first (idempotent)."""
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    reports = []
    for name in sorted(local.latest):
        subject = subject_for(topic_of_schema(name))
        registered: list[str] = []
        new: list[str] = []
        refused: list[str] = []
        try:
            has_subject = subject in client.get_subjects()
        except SchemaRegistryError:
            has_subject = False
        if register:
            client.set_compatibility(subject, compatibility)
        for version in versions_in_order(local, name):
            label = f"{version.name}.v{version.version}"
            schema = Schema(schema_text(version), "AVRO")
            if has_subject:
                try:
                    client.lookup_schema(subject, schema)
                    registered.append(label)
                    continue
                except SchemaRegistryError as exc:
                    if exc.http_status_code != 404:
                        raise
                if not client.test_compatibility(subject, schema):
                    refused.append(f"{label}: incompatible with {subject}'s latest version")
                    break
            if register:
                try:
                    client.register_schema(subject, schema)
                except SchemaRegistryError as exc:
                    if exc.http_status_code != CONFLICT:
                        raise
                    refused.append(f"{label}: {exc.error_message}")
                    break
                has_subject = True
            new.append(label)
        reports.append(SubjectReport(subject, not refused, registered, new, refused))
    return reports
