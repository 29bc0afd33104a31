"""Default store credentials: refused in production, a warning in development.

The defaults in domain/settings.py (and docker-compose.yml, and the CHANGE-ME placeholders of
deploy/strimzi/stores.env.example) are public, so a deployment that kept one is open to anyone
who can reach the store. With MEMESTREAM_ENV=production the API (api/app.py) and the workers
(streams/app.py) refuse to start and name every such setting; in development they log one
warning per process. What counts: the PostgreSQL and ClickHouse URLs' passwords, the S3 secret
key (with STORAGE_BACKEND=s3), a Redis URL without a password, and a SASL password left as a
placeholder. Sessions are random tokens stored in Redis: there is no signing secret to check.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from domain.settings import Settings, StorageBackend

log = logging.getLogger(__name__)
#: Passwords anyone can read in this repository.
KNOWN = frozenset({"memestream", "memestream-secret", "CHANGE-ME", "change-me", ""})
_warned = False


class DefaultCredentials(RuntimeError):
    """Production with a credential everyone knows."""


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def default_credentials(settings: Settings) -> list[str]:
    """The settings whose credential is a shipped default or missing, by environment name."""
    found = []
    if (_password(settings.database_url) or "") in KNOWN:
        found.append("DATABASE_URL")
    if settings.storage_backend is StorageBackend.S3 and settings.s3_secret_key in KNOWN:
        found.append("S3_SECRET_KEY")
    if (_password(settings.redis_url) or "") in KNOWN:
        found.append("REDIS_URL")
    clickhouse = settings.clickhouse_url
    if not clickhouse.startswith("chdb://") and (_password(clickhouse) or "") in KNOWN:
        found.append("CLICKHOUSE_URL")
    if settings.kafka_sasl_username and (settings.kafka_sasl_password or "") in KNOWN:
        found.append("KAFKA_SASL_PASSWORD")
    return found


def enforce(settings: Settings, process: str) -> None:
    """Raises DefaultCredentials in production; in development warns once per process."""
    global _warned
    found = default_credentials(settings)
    if not found:
        return
    names = ", ".join(found)
    if settings.memestream_env == "production":
        raise DefaultCredentials(
            f"{process} refuses to start: MEMESTREAM_ENV=production and {names} "
            "still use a default or empty credential; set real ones (README: configuration)"
        )
    if not _warned:
        _warned = True
        log.warning(
            "%s uses default store credentials (%s): fine on the local stack, refused with "
            "MEMESTREAM_ENV=production",
            process,
            names,
        )
