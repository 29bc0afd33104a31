"""The services' Kafka contracts (producers/roles.py). The write declaration against the code:
every producer call site's topic is declared for the service its module runs in, and every
declared topic is written.

An AST scan, not a run: a code path that produces only on an error (a DLQ) or an admin action
(a review) counts as much as the hot path. A call site is `<...producer...>.send/produce/
send_raw(topic, ...)`, or `outbox.message(topic, ...)` (an event staged in the transactional
outbox, which the API's relay produces); its topic must resolve to a registry constant
(`MEME_X.name`), a parameter's default of one (`self.topic` set from `topic: str = MEME_X.name`),
or the shared dead-letter writer's `f"{topic}.dlq"`. Anything else fails: say which topic it is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from api.analytics_reader import AnalyticsReader
from domain.settings import Settings
from producers import topics
from producers.roles import (
    ANALYTICS,
    API,
    DEAD_LETTER_MODULE,
    INFERENCE,
    RENDER,
    ROLES,
    WORKER_ROLES,
    WRITERS,
    web_port,
    writer_of,
)

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("api", "streams", "sinks", "producers", "domain")
#: The producer wrapper itself: its `produce(topic, ...)` is what the call sites call; the
#: outbox relay produces what the `outbox.message` call sites staged.
WRAPPERS = {"producers.producer", "api.outbox"}
METHODS = {"send", "produce", "send_raw"}
DLQ = "<topic>.dlq"
CONSTANTS = {
    name: spec.name for name, spec in vars(topics).items() if isinstance(spec, topics.TopicSpec)
}


def dotted(node: ast.expr) -> str:
    return ast.unparse(node)


def init_defaults(tree: ast.Module) -> dict[str, ast.expr]:
    """`self.<attr>` of every class whose __init__ assigns it a parameter with a default."""
    found: dict[str, ast.expr] = {}
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for init in cls.body:
            if not (isinstance(init, ast.FunctionDef) and init.name == "__init__"):
                continue
            args = init.args.args[-len(init.args.defaults) :] if init.args.defaults else []
            defaults = {a.arg: d for a, d in zip(args, init.args.defaults, strict=True)}
            for stmt in ast.walk(init):
                if (
                    isinstance(stmt, ast.Assign)
                    and isinstance(stmt.value, ast.Name)
                    and stmt.value.id in defaults
                ):
                    for target in stmt.targets:
                        if isinstance(target, ast.Attribute):
                            found[f"self.{target.attr}"] = defaults[stmt.value.id]
    return found


def resolve(node: ast.expr, defaults: dict[str, ast.expr]) -> str | None:
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.attr == "name"
        and node.value.id in CONSTANTS
    ):
        return CONSTANTS[node.value.id]
    last = node.values[-1] if isinstance(node, ast.JoinedStr) and node.values else None
    if isinstance(last, ast.Constant) and str(last.value).endswith(".dlq"):
        return DLQ
    if dotted(node) in defaults:
        return resolve(defaults[dotted(node)], {})
    return None


def produces(func: ast.expr) -> bool:
    """A producer call, or an event staged for the outbox relay to produce."""
    if not isinstance(func, ast.Attribute):
        return False
    target = dotted(func.value)
    return (func.attr in METHODS and "producer" in target.lower()) or (
        func.attr == "message" and target == "outbox"
    )


def call_sites() -> list[tuple[str, int, str | None]]:
    """(module, line, topic or None) of every producer call in the scanned packages."""
    sites = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            if module in WRAPPERS:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            defaults = init_defaults(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and node.args and produces(node.func):
                    sites.append((module, node.lineno, resolve(node.args[0], defaults)))
    return sites


SITES = call_sites()


def test_the_scan_finds_the_known_producers() -> None:
    """Guards the scan itself: if these vanish, the matcher broke, not the code."""
    found = {(m, t) for m, _, t in SITES}
    assert ("api.routes.review", "meme.rendered") in found
    assert ("api.views", "meme.views") in found
    assert ("api.votes", "meme.votes") in found  # staged in the outbox (the one vote path)
    assert ("api.routes.memes.deletes", "meme.deleted") in found  # staged in the outbox
    assert ("streams.render", "meme.feed") in found
    assert (DEAD_LETTER_MODULE, DLQ) in found


@pytest.mark.parametrize(("module", "line", "topic"), SITES, ids=[f"{m}:{n}" for m, n, _ in SITES])
def test_every_producer_call_writes_a_declared_topic(
    module: str, line: int, topic: str | None
) -> None:
    assert topic is not None, f"{module}:{line}: cannot tell which topic this writes"
    if module == DEAD_LETTER_MODULE:
        assert topic == DLQ and all(WRITERS[r].dead_letters for r in ROLES), (
            "every role dead-letters through streams/dlq.py"
        )
        return
    writer = writer_of(module)
    assert writer is not None, f"{module}:{line} produces but no service in WRITERS claims it"
    assert topic in writer.writes, f"{module}:{line} writes {topic}, undeclared for {writer.name}"


@pytest.mark.parametrize("service", sorted(WRITERS))
def test_every_declared_topic_is_written(service: str) -> None:
    """No ACL wider than the code: a declared topic some call site of the service writes."""
    written = {t for m, _, t in SITES if (w := writer_of(m)) is not None and w.name == service}
    assert set(WRITERS[service].writes) == written


def test_every_role_and_the_api_are_declared() -> None:
    assert set(WRITERS) == {"api", *ROLES}


def test_every_worker_role_has_its_own_web_port() -> None:
    """Kafka roles first, so their ports stay as they were; inference after them."""
    assert WORKER_ROLES == ("render", "trending", "analytics", INFERENCE)
    assert [web_port(7000, r) for r in WORKER_ROLES] == [7000, 7001, 7002, 7003]


async def test_the_api_finds_the_analytics_worker_by_the_roles_declaration() -> None:
    settings = Settings(worker_web_port=7000, clickhouse_url="chdb:///nowhere")
    reader = AnalyticsReader(settings)
    try:
        assert reader._http is not None
        assert str(reader._http.base_url) == f"http://127.0.0.1:{web_port(7000, ANALYTICS.name)}"
    finally:
        await reader.close()


def test_a_role_writes_its_topics_and_the_dlqs_of_what_it_reads() -> None:
    assert RENDER.group_id == "memestream-render"
    assert RENDER.group_id_for("test") == "test-render"
    assert RENDER.outputs == ("meme.rendered", "meme.feed", "meme.requests.dlq")
    assert API.outputs == API.writes  # the API never dead-letters
