"""ClickHouse analytics: the client factory (chDB or server) and the schema."""

from sinks.clickhouse.client import chdb_location, get_client
from sinks.clickhouse.schema import EVENT_COLUMNS, EVENT_TYPES, apply_schema

__all__ = ["EVENT_COLUMNS", "EVENT_TYPES", "apply_schema", "chdb_location", "get_client"]
