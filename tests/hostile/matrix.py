"""The hostile matrix: every operation of the OpenAPI document x every field kind it takes
(path, query, JSON body, multipart form) x the hostile values of that field's type.

Generated from the document itself (`api.app.app.openapi()`), so a new route or field is
covered without touching this file. Each case says whether a refusal is required (`must`: a
NUL, a control character, a non-finite number, a boolean for a number, a wrong type, absurd
nesting...) or whether a documented success is also fine (an odd but legal value: a bidi
mark in a search, `-0` for a number). Either way the answer is a 4xx problem+json or a
status the operation documents, never a 5xx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from tests.hostile.corpus import _png

#: Operations never fuzzed here: a stream that does not end (SSE), the liveness probes.
SKIPPED = {("get", "/api/feed/stream")}
#: Path ids that exist only once the test made them: replaced at request time.
MEME_ID = "{meme}"


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    method: str
    path: str
    kind: str  # path, query, header, json, multipart
    must_refuse: bool
    documented: frozenset[int]
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = None


# (label, value, must_refuse) for text fields; every one of them but the last three must be
# refused wherever the text reaches PostgreSQL, a renderer or an id lookup.
TEXTS: list[tuple[str, str, bool]] = [
    ("nul", "a\x00b", True),
    ("bell-escape", "\x07\x1b[31mred", True),
    ("crlf", "a\r\nb", True),
    ("del", "a\x7fb", True),
    ("c1-control", "a\x85b", True),
    ("private-use", "a\ue000b", True),
    ("bidi-override", "a\u202eb", False),
    ("huge-5000", "A" * 5000, False),
    ("sql", "x' OR '1'='1' --", False),
    ("traversal", "../../etc/passwd", False),
]
# Query and path numbers arrive as text.
NUMBERS_AS_TEXT: list[tuple[str, str, bool]] = [
    ("nan", "NaN", True),
    ("infinity", "Infinity", True),
    ("minus-infinity", "-Infinity", True),
    ("huge-float", "1e309", True),
    ("huge-int", "9" * 40, True),
    ("bool", "true", True),
    ("empty", "", True),
    ("hex", "0x10", True),
    ("minus-zero", "-0", False),
]
# JSON values (raw JSON text) by the field's type.
JSON_FOR_NUMBER: list[tuple[str, bytes, bool]] = [
    ("nan", b"NaN", True),
    ("infinity", b"Infinity", True),
    ("minus-infinity", b"-Infinity", True),
    ("huge-float", b"1e309", True),
    ("huge-int", b"9" * 40, True),
    ("bool", b"true", True),
    ("string", b'"1"', True),
    ("list", b"[1]", True),
    ("minus-zero", b"-0", False),
]
JSON_WRONG_TYPES: list[tuple[str, bytes, bool]] = [
    ("number", b"1", True),
    ("bool", b"false", True),
    ("object", b'{"$ne": null}', True),
    ("deep-1500", b"[" * 1500 + b"]" * 1500, True),
    ("deep-100000", b"[" * 100_000 + b"]" * 100_000, True),
]
JSON_HUGE_STRING = ("huge-200000", json.dumps("B" * 200_000).encode(), True)
#: Valid JSON, but no UTF-8 encoder (PostgreSQL's, Kafka's) can take a lone surrogate.
JSON_LONE_SURROGATE = ("lone-surrogate", b'"a\\ud800b"', True)

#: A valid JSON body per operation; one field at a time is replaced by a hostile value.
BASE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/api/auth/register"): {"username": "hostile_base", "password": "long enough pw"},
    ("post", "/api/auth/login"): {"username": "hostile_base", "password": "long enough pw"},
    ("post", "/api/auth/api-keys"): {"name": "hostile"},
    ("post", "/api/meme/generate"): {"template_id": "drake", "texts": ["a", "b"]},
    ("post", "/api/meme/batch"): {"items": [{"template_id": "drake", "texts": ["a", "b"]}]},
    ("post", "/api/meme/{meme_id}/vote"): {"value": 1},
    ("post", "/api/admin/review/{meme_id}/approve"): {"note": "ok"},
    ("post", "/api/admin/review/{meme_id}/reject"): {"note": "no"},
    ("post", "/api/meme/caption"): {"template_id": "drake"},
    ("post", "/api/templates/suggest"): {"text": "2am"},
}
#: Generate's own fields, each with values that must never render: the issue's cases.
GENERATE_FIELDS: list[tuple[str, str, Any]] = [
    ("transform", "rotate-nan", ["rotate:nan"]),
    ("transform", "rotate-inf", ["rotate:inf"]),
    ("transform", "crop-nan", ["crop:0,0,nan,10"]),
    ("transform", "crop-inf", ["crop:0,0,inf,inf"]),
    ("filters", "blur-nan", ["blur:nan"]),
    ("filters", "sepia-inf", ["sepia:inf"]),
    ("filters", "huge-spec", ["blur:" + "1" * 500]),
    ("filters", "nine-filters", ["blur"] * 9),
    ("boxes", "bool-x", [{"x": True, "y": 0, "width": 10, "height": 10}] * 2),
    ("boxes", "float-x", [{"x": 1.5, "y": 0, "width": 10, "height": 10}] * 2),
    ("boxes", "outside", [{"x": 599, "y": 599, "width": 10, "height": 10}] * 2),
    ("boxes", "three-hundred", [{"x": 0, "y": 0, "width": 10, "height": 10}] * 300),
    ("texts", "unicode-format-char", ["a\u2060b"]),
    ("texts", "over-limit", ["C" * 3000]),
    ("texts", "21-texts", ["x"] * 21),
    ("template_id", "unknown", "no-such-template"),
    ("auto_caption", "int-for-bool", 1),
]
#: Upload `boxes` values (the form field is JSON text), each of which must be refused.
BOX = {"x": 10, "y": 10, "width": 40, "height": 20}
UPLOAD_BOXES: list[tuple[str, str]] = [
    ("300-boxes", json.dumps([BOX] * 300)),
    ("colour-notacolor", json.dumps([{**BOX, "color": "notacolor"}])),
    ("outline-notacolor", json.dumps([{**BOX, "outline_color": "#12"}])),
    ("gradient-bad", json.dumps([{**BOX, "gradient": ["red"]}])),
    ("font-size-100000", json.dumps([{**BOX, "max_font_size": 100_000}])),
    ("font-size-zero", json.dumps([{**BOX, "min_font_size": 0}])),
    ("bool-x", json.dumps([{**BOX, "x": True}])),
    ("float-x", json.dumps([{**BOX, "x": 1.5}])),
    ("string-x", json.dumps([{**BOX, "x": "10"}])),
    ("rotation-nan", '[{"x": 10, "y": 10, "width": 40, "height": 20, "rotation": NaN}]'),
    ("rotation-inf", '[{"x": 10, "y": 10, "width": 40, "height": 20, "rotation": Infinity}]'),
    ("rotation-bool", json.dumps([{**BOX, "rotation": True}])),
    ("rotation-huge", json.dumps([{**BOX, "rotation": 1e300}])),
    ("uppercase-int", json.dumps([{**BOX, "uppercase": 1}])),
    ("name-nul", json.dumps([{**BOX, "name": "a\x00b"}])),
    ("name-crlf", json.dumps([{**BOX, "name": "a\r\nb"}])),
    ("font-nul", json.dumps([{**BOX, "font": "impact\x00"}])),
    ("align-unknown", json.dumps([{**BOX, "align": "justify"}])),
    ("max-lines-zero", json.dumps([{**BOX, "max_lines": 0}])),
    ("unknown-key", json.dumps([{**BOX, "text": "hi", "admin": True}])),
    ("zero-size", json.dumps([{**BOX, "width": 0}])),
    ("negative", json.dumps([{**BOX, "x": -1}])),
    ("outside", json.dumps([{**BOX, "x": 60}])),
    ("not-a-list", json.dumps(BOX)),
    ("empty-list", "[]"),
    ("list-of-numbers", "[1, 2]"),
    ("nested-1500", "[" * 1500 + "]" * 1500),
    ("nested-100000", "[" * 100_000 + "]" * 100_000),
    ("not-json", "{nope"),
]

BOUNDARY = "matrixboundary"


def multipart(fields: dict[str, str], image: bytes | None) -> tuple[bytes, str]:
    parts = []
    for name, value in fields.items():
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(head.encode() + value.encode("utf-8", "surrogatepass") + b"\r\n")
    if image is not None:
        parts.append(
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                'filename="t.png"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + image
            + b"\r\n"
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode(), (
        f"multipart/form-data; boundary={BOUNDARY}"
    )


def _schema_type(schema: dict[str, Any], spec: dict[str, Any]) -> str:
    if "$ref" in schema:
        return _schema_type(_resolve(schema, spec), spec)
    if "type" in schema:
        return str(schema["type"])
    for option in schema.get("anyOf", []):
        kind = _schema_type(option, spec)
        if kind != "null":
            return kind
    return "string"


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    if "anyOf" in schema:
        objects = [_resolve(o, spec) for o in schema["anyOf"] if o.get("type") != "null"]
        if objects:
            return objects[0]
    return schema


def _documented(operation: dict[str, Any]) -> frozenset[int]:
    return frozenset(int(s) for s in operation.get("responses", {}) if s.isdigit())


def _base_path(path: str) -> str:
    return (
        path.replace("{meme_id}", MEME_ID)
        .replace("{template_id}", "drake")
        .replace("{key_id}", "00000000-0000-7000-8000-000000000000")
    )


def _parameter_cases(path: str, method: str, operation: dict[str, Any], spec: dict) -> list[Case]:
    cases = []
    documented = _documented(operation)
    for parameter in operation.get("parameters", []):
        where, name = parameter["in"], parameter["name"]
        if where == "header":
            continue  # control characters cannot be sent in a header at all
        kind = _schema_type(parameter.get("schema", {}), spec)
        values = TEXTS if kind == "string" else NUMBERS_AS_TEXT
        if kind == "boolean":
            values = [(label, v, must) for label, v, must in NUMBERS_AS_TEXT if label != "bool"]
        for label, value, must in values:
            case_id = f"{method.upper()} {path} {where}:{name}={label}"
            if where == "path":
                target = path.replace("{" + name + "}", _quote(value))
                cases.append(Case(case_id, method, _base_path(target), "path", must, documented))
            else:
                cases.append(
                    Case(
                        case_id,
                        method,
                        _base_path(path),
                        "query",
                        must,
                        documented,
                        params={name: value},
                        body=_body_for(method, path),
                        content_type="application/json" if _body_for(method, path) else None,
                    )
                )
    return cases


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _body_for(method: str, path: str) -> bytes | None:
    base = BASE_BODIES.get((method, path))
    return None if base is None else json.dumps(base).encode()


def _json_cases(path: str, method: str, operation: dict[str, Any], spec: dict) -> list[Case]:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content or (method, path) not in BASE_BODIES:
        return []
    documented = _documented(operation)
    schema = _resolve(content["application/json"]["schema"], spec)
    base = BASE_BODIES[(method, path)]
    target = _base_path(path)
    cases = []

    def add(label: str, body: bytes, must: bool) -> None:
        cases.append(
            Case(
                f"{method.upper()} {path} json:{label}",
                method,
                target,
                "json",
                must,
                documented,
                body=body,
                content_type="application/json",
            )
        )

    for name, prop in schema.get("properties", {}).items():
        kind = _schema_type(prop, spec)
        if kind == "string":
            values = [(lb, json.dumps(v).encode(), m) for lb, v, m in TEXTS[:6]]
            values += [JSON_LONE_SURROGATE, JSON_HUGE_STRING, *JSON_WRONG_TYPES]
        elif kind in ("integer", "number", "boolean"):
            values = list(JSON_FOR_NUMBER)
            if kind == "boolean":
                values = [(lb, v, True) for lb, v, _ in values if lb != "bool"]
        else:  # array or object
            values = [("wrong-string", b'"x"', True), *JSON_WRONG_TYPES[3:]]
            values.append(("nested-wrong", b"[[1]]" if kind == "array" else b'{"a": []}', True))
        for label, raw, must in values:
            fields = {k: json.dumps(v) for k, v in base.items() if k != name}
            fields[name] = raw.decode("utf-8", "surrogatepass")
            body = "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}"
            add(f"{name}={label}", body.encode("utf-8", "surrogatepass"), must)
    add("body-deep-1500", b"[" * 1500 + b"]" * 1500, True)
    add("body-deep-100000", b"[" * 100_000 + b"]" * 100_000, True)
    add("body-deep-in-object", b'{"a": ' + b"[" * 1500 + b"]" * 1500 + b"}", True)
    # RFC 8259 lets a parser ignore a BOM: accepted or refused, never a 5xx.
    add("body-utf8-bom", b"\xef\xbb\xbf" + json.dumps(base).encode(), False)
    add("body-int-5000-digits", b'{"n": ' + b"9" * 5000 + b"}", True)
    add("body-not-utf8", b'{"a": "\xff\xfe"}', True)
    if (method, path) == ("post", "/api/meme/generate"):
        for name, label, value in GENERATE_FIELDS:
            add(f"{name}={label}", json.dumps({**base, name: value}).encode(), True)
    return cases


def _upload_cases(operation: dict[str, Any]) -> list[Case]:
    documented = _documented(operation)
    image = _png(64, 64)
    base = {"name": "hostile upload", "description": "", "tags": "a,b", "category": "uploads"}
    cases = []

    def add(label: str, fields: dict[str, str], must: bool) -> None:
        body, content_type = multipart(fields, image)
        cases.append(
            Case(
                f"POST /api/templates multipart:{label}",
                "post",
                "/api/templates",
                "multipart",
                must,
                documented,
                body=body,
                content_type=content_type,
            )
        )

    # A lone surrogate, written with surrogatepass: bytes that are not UTF-8 at all.
    texts = [*TEXTS, ("not-utf8", "a\ud800b", True)]
    for name in ("name", "description", "tags", "category"):
        for label, value, must in texts:
            if label == "huge-5000" and name == "description":
                value = "D" * 1001
            add(f"{name}={label}", {**base, name: value}, must or name == "category")
    for label, boxes in UPLOAD_BOXES:
        add(f"boxes={label}", {**base, "boxes": boxes}, True)
    return cases


@cache
def cases() -> tuple[Case, ...]:
    """Every case, generated from this checkout's OpenAPI document (no service needed)."""
    from api.app import app

    spec = app.openapi()
    found: list[Case] = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if (method, path) in SKIPPED:
                continue
            found += _parameter_cases(path, method, operation, spec)
            found += _json_cases(path, method, operation, spec)
            if (method, path) == ("post", "/api/templates"):
                found += _upload_cases(operation)
    return tuple(found)
