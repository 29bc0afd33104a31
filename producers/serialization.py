"""Avro events in a framing that lets any consumer find the writer's schema.

Two framings, both read by every consumer whatever it writes:

- the Confluent wire format (`CONFLUENT`, the default with a schema registry): `00` + the
  registry's 4-byte big-endian schema id + the Avro binary body; what kcat, Kafka Connect,
  ClickHouse's `AvroConfluent`, Flink and Spark read. Ids come from the registry once per
  schema version and are cached (`producers.schema_registry.SchemaIds`);
- Avro single-object encoding (`SINGLE_OBJECT`, no registry needed): `C3 01` + the writer
  schema's CRC-64-AVRO fingerprint (8 bytes, little-endian) + the body.

Every version of every schema in `schemas/` is known by fingerprint; a reader resolves the
writer's version into the newest one, so old writers stay readable after a schema gains
fields with defaults. The codec writes the framing itself rather than through
confluent-kafka's `AvroSerializer`: the same bytes, several times faster
(`benchmarks/registry.py` measures both).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import io
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from domain.events import EVENT_TYPES, Event
from domain.settings import PROJECT_ROOT, Settings, get_settings
from producers.schema_registry import SchemaIds, SchemaUnavailable, UnknownSchemaId

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_SIZE = 5
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
E = TypeVar("E", bound=Event)
T = TypeVar("T")
_VERSIONED = re.compile(r"^(?P<name>\w+)\.v(?P<version>\d+)\.avsc$")


class SerializationError(ValueError):
    """A message that cannot be decoded: it goes to the DLQ with this reason."""


class WriterSchemaUnavailable(SerializationError):
    """A Confluent-framed message whose schema id is not cached and the registry did not
    answer: the message may be fine. Workers wait for the registry (streams/schema_wait.py);
    other readers treat it as undecodable, with this reason."""


class WireFormat(enum.StrEnum):
    CONFLUENT = "confluent"
    SINGLE_OBJECT = "single-object"


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    name: str
    version: int
    parsed: Any
    fingerprint: bytes
    # The schema as written (defaults and docs kept: the registry checks compatibility on it).
    text: str = ""


@dataclass(frozen=True, slots=True)
class SchemaRegistry:
    """All schema versions found in a folder, by fingerprint and by name."""

    by_fingerprint: Mapping[bytes, SchemaVersion]
    latest: Mapping[str, SchemaVersion]

    @classmethod
    def from_folder(cls, folder: Path = SCHEMAS_DIR) -> SchemaRegistry:
        by_fp: dict[bytes, SchemaVersion] = {}
        latest: dict[str, SchemaVersion] = {}
        for path in sorted(folder.glob("*.avsc")):
            match = _VERSIONED.match(path.name)
            if match is None:
                raise ValueError(f"{path.name}: schema files are named Name.vN.avsc")
            raw = json.loads(path.read_text())
            parsed = parse_schema(raw)
            fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
            text = json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
            version = SchemaVersion(match["name"], int(match["version"]), parsed, fp, text)
            by_fp[fp] = version
            if match["name"] not in latest or version.version > latest[match["name"]].version:
                latest[match["name"]] = version
        return cls(by_fp, latest)


@cache
def default_registry() -> SchemaRegistry:
    return SchemaRegistry.from_folder()


class AvroCodec:
    """Encodes events with the newest schema of their type and decodes any known version,
    in either framing."""

    def __init__(
        self,
        registry: SchemaRegistry | None = None,
        *,
        wire_format: WireFormat = WireFormat.SINGLE_OBJECT,
        schema_ids: SchemaIds | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.registry = registry or default_registry()
        if wire_format is WireFormat.CONFLUENT and schema_ids is None:
            schema_ids = registry_ids(self.registry, settings or get_settings())
            if schema_ids is None:
                raise ValueError("the Confluent wire format needs SCHEMA_REGISTRY_URL")
        self.wire_format = wire_format
        self._ids = schema_ids
        self._settings = settings
        self._headers: dict[str, bytes] = {}

    @classmethod
    def from_settings(cls, settings: Settings, registry: SchemaRegistry | None = None) -> AvroCodec:
        """The codec producers use: the Confluent framing when a registry is configured
        (`SCHEMA_REGISTRY_URL`, `AVRO_WIRE_FORMAT=confluent`), single-object otherwise."""
        registry = registry or default_registry()
        ids = registry_ids(registry, settings)
        confluent = settings.uses_schema_registry and ids is not None
        return cls(
            registry,
            wire_format=WireFormat.CONFLUENT if confluent else WireFormat.SINGLE_OBJECT,
            schema_ids=ids,
            settings=settings,
        )

    @property
    def schema_ids(self) -> SchemaIds | None:
        """The registry's ids (None without a registry); created on first use for reading."""
        if self._ids is None:
            self._ids = registry_ids(self.registry, self._settings or get_settings())
        return self._ids

    # Writing.

    def header(self, schema_name: str) -> bytes:
        """The framing bytes of a schema's newest version. Raises SchemaUnavailable when the
        registry must be asked and does not answer (a blocking call, once per schema)."""
        header = self._headers.get(schema_name)
        if header is not None:
            return header
        schema = self.registry.latest[schema_name]
        if self.wire_format is WireFormat.SINGLE_OBJECT or self._ids is None:
            header = MAGIC + schema.fingerprint
        else:
            schema_id = self._ids.id_for(schema)
            header = bytes((CONFLUENT_MAGIC,)) + schema_id.to_bytes(4, "big")
        self._headers[schema_name] = header
        return header

    def ready(self, schema_name: str) -> bool:
        """True when encoding this schema needs no registry call."""
        if schema_name in self._headers or self.wire_format is WireFormat.SINGLE_OBJECT:
            return True
        return (
            self._ids is not None
            and self._ids.cached_id(self.registry.latest[schema_name]) is not None
        )

    def prefetch(self) -> None:
        """Asks the registry for every schema's ids now, so no later call waits for it.
        Raises SchemaUnavailable (callers that can wait for later may ignore it)."""
        if self.wire_format is WireFormat.CONFLUENT and self._ids is not None:
            self._ids.resolve()
            for name in self.registry.latest:
                self.header(name)

    def body(self, event: Event) -> bytes:
        """The Avro binary body alone, in the newest schema of the event's type."""
        buffer = io.BytesIO()
        schemaless_writer(buffer, self.registry.latest[event.schema_name].parsed, _to_record(event))
        return buffer.getvalue()

    def encode(self, event: Event) -> bytes:
        schema = self.registry.latest[event.schema_name]
        buffer = io.BytesIO()
        buffer.write(self.header(event.schema_name))
        schemaless_writer(buffer, schema.parsed, _to_record(event))
        return buffer.getvalue()

    # Reading.

    def decode(self, data: bytes | None) -> Event:
        if not data:
            raise SerializationError("empty message")
        if data[0] == CONFLUENT_MAGIC and len(data) >= CONFLUENT_HEADER_SIZE:
            writer = self._confluent_writer(int.from_bytes(data[1:CONFLUENT_HEADER_SIZE], "big"))
            body = data[CONFLUENT_HEADER_SIZE:]
        elif len(data) >= HEADER_SIZE and data[:2] == MAGIC:
            found = self.registry.by_fingerprint.get(data[2:HEADER_SIZE])
            if found is None:
                raise SerializationError(f"unknown schema fingerprint {data[2:HEADER_SIZE].hex()}")
            writer = found
            body = data[HEADER_SIZE:]
        else:
            raise SerializationError(
                "neither Confluent wire format nor Avro single-object (bad magic or too short)"
            )
        reader = self.registry.latest.get(writer.name)
        if reader is None:
            raise SerializationError(f"schema id names {writer.name!r}, not an event of ours")
        # Resolving a schema against itself is pure cost (most messages are the newest version).
        resolve_to = None if reader is writer else reader.parsed
        try:
            record = schemaless_reader(io.BytesIO(body), writer.parsed, resolve_to)
        except Exception as exc:  # fastavro raises many types on corrupt bodies
            raise SerializationError(f"corrupt {writer.name} body: {exc!r}") from exc
        return _from_record(EVENT_TYPES[writer.name], record)

    def _confluent_writer(self, schema_id: int) -> SchemaVersion:
        ids = self.schema_ids
        if ids is None:
            raise WriterSchemaUnavailable(
                f"Confluent-framed message (schema id {schema_id}) and no SCHEMA_REGISTRY_URL"
            )
        try:
            return ids.writer(schema_id)
        except UnknownSchemaId as exc:
            raise SerializationError(str(exc)) from exc
        except SchemaUnavailable as exc:
            raise WriterSchemaUnavailable(f"writer schema id {schema_id}: {exc}") from exc

    def decode_as(self, data: bytes | None, kind: type[E]) -> E:
        event = self.decode(data)
        if not isinstance(event, kind):
            raise SerializationError(f"expected {kind.__name__}, got {type(event).__name__}")
        return event


def registry_ids(registry: SchemaRegistry, settings: Settings) -> SchemaIds | None:
    """The registry's ids of these schemas, or None when no registry is configured."""
    if not settings.schema_registry_url:
        return None
    return SchemaIds(
        settings.schema_registry_url,
        registry,
        timeout_s=settings.schema_registry_timeout_s,
        compatibility=settings.schema_compatibility,
    )


def _to_record(value: Any) -> Any:
    """Dataclasses to dicts, nested ones too; unlike `dataclasses.asdict`, no deep copy of
    every leaf (that copy was most of an encode's cost)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _to_record(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, list | tuple):
        return [_to_record(item) for item in value]
    if isinstance(value, dict):
        return {key: _to_record(item) for key, item in value.items()}
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _from_record(cls: type[T], record: Mapping[str, Any]) -> T:
    values = {
        name: value if convert is None or value is None else convert(value)
        for name, convert in _converters(cls)
        if (value := record.get(name, _MISSING)) is not _MISSING
    }
    return cls(**values)


_MISSING = object()
Converter = typing.Callable[[Any], Any]


@cache
def _converters(cls: type) -> tuple[tuple[str, Converter | None], ...]:
    """Each field's converter from Avro's plain values, worked out once per class (None: the
    value is used as it is); decoding is on every consumer's hot path."""
    names = {f.name for f in dataclasses.fields(cls)}
    hints = {k: v for k, v in typing.get_type_hints(cls).items() if k in names}
    return tuple((name, _converter(hint)) for name, hint in hints.items())


def _converter(hint: Any) -> Converter | None:
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        convert_item = _converter(item)
        if convert_item is None:
            return None
        return lambda values: [None if v is None else convert_item(v) for v in values]
    if origin in (typing.Union, types.UnionType):
        return _converter(next(a for a in typing.get_args(hint) if a is not type(None)))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        nested: type = hint
        return lambda value: _from_record(nested, value)
    return None
