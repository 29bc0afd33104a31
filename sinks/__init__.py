"""Writers and readers of the stores: object storage, PostgreSQL, Redis, ClickHouse."""
