"""The analytics tables: `schema.sql` applied idempotently, and the column contract of `events`.

Why a module beside the SQL: the analytics agent (writer), the API's analytics routes and the
Grafana dashboards (readers) share these names; the tests run the SQL on chDB.
"""

from __future__ import annotations

import re
from pathlib import Path

from clickhouse_connect.driver.client import Client

SCHEMA_FILE = Path(__file__).with_name("schema.sql")

EVENT_TYPES: tuple[str, ...] = ("requested", "rendered", "failed", "view", "vote", "deleted")

# Insert order for `client.insert("events", rows, column_names=EVENT_COLUMNS)`; `ingested_at`
# is filled by the server.
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "event_type",
    "meme_id",
    "template_id",
    "category",
    "user_id",
    "ts",
    "render_ms",
    "vote",
    "sentiment",
    "moderation_label",
    "moderation_score",
    "format",
    "bytes",
)

TABLES: tuple[str, ...] = ("events", "events_per_minute", "engagement_per_minute")
VIEWS: tuple[str, ...] = ("events_per_minute_mv", "engagement_per_minute_mv")

_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)


def statements(sql: str | None = None) -> list[str]:
    """The schema's statements in order, full-line `--` comments removed."""
    text = sql if sql is not None else SCHEMA_FILE.read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [part.strip() for part in _STATEMENT_END.split(body) if part.strip()]


def apply_schema(client: Client) -> list[str]:
    """Creates what is missing (tables before the views that feed them); safe to run again."""
    applied = statements()
    for statement in applied:
        client.command(statement)
    return applied
