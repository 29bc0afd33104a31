"""Avro single-object encoding of events, so any consumer can find the writer's schema.

Each message is `C3 01` + the writer schema's CRC-64-AVRO fingerprint (8 bytes,
little-endian) + the Avro binary body. Every version of every schema in `schemas/`
is known by fingerprint; a reader resolves the writer's version into the newest one,
so old writers stay readable after a schema gains fields with defaults.
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
from domain.settings import PROJECT_ROOT

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
E = TypeVar("E", bound=Event)
T = TypeVar("T")
_VERSIONED = re.compile(r"^(?P<name>\w+)\.v(?P<version>\d+)\.avsc$")


class SerializationError(ValueError):
    """A message that cannot be decoded: it goes to the DLQ with this reason."""


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    name: str
    version: int
    parsed: Any
    fingerprint: bytes


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
            parsed = parse_schema(json.loads(path.read_text()))
            fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
            version = SchemaVersion(match["name"], int(match["version"]), parsed, fp)
            by_fp[fp] = version
            if match["name"] not in latest or version.version > latest[match["name"]].version:
                latest[match["name"]] = version
        return cls(by_fp, latest)


@cache
def default_registry() -> SchemaRegistry:
    return SchemaRegistry.from_folder()


class AvroCodec:
    """Encodes events with the newest schema of their type and decodes any known version."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self.registry = registry or default_registry()

    def encode(self, event: Event) -> bytes:
        schema = self.registry.latest[event.schema_name]
        buffer = io.BytesIO()
        buffer.write(MAGIC)
        buffer.write(schema.fingerprint)
        schemaless_writer(buffer, schema.parsed, _to_record(event))
        return buffer.getvalue()

    def decode(self, data: bytes | None) -> Event:
        if not data or len(data) < HEADER_SIZE or data[:2] != MAGIC:
            raise SerializationError("not an Avro single-object message (bad magic or too short)")
        writer = self.registry.by_fingerprint.get(data[2:HEADER_SIZE])
        if writer is None:
            raise SerializationError(f"unknown schema fingerprint {data[2:HEADER_SIZE].hex()}")
        reader = self.registry.latest[writer.name]
        # Resolving a schema against itself is pure cost (most messages are the newest version).
        resolve_to = None if reader is writer else reader.parsed
        try:
            record = schemaless_reader(io.BytesIO(data[HEADER_SIZE:]), writer.parsed, resolve_to)
        except Exception as exc:  # fastavro raises many types on corrupt bodies
            raise SerializationError(f"corrupt {writer.name} body: {exc!r}") from exc
        return _from_record(EVENT_TYPES[writer.name], record)

    def decode_as(self, data: bytes | None, kind: type[E]) -> E:
        event = self.decode(data)
        if not isinstance(event, kind):
            raise SerializationError(f"expected {kind.__name__}, got {type(event).__name__}")
        return event


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
