"""The errors a PostgreSQL call can raise when the store, not the caller, is at fault.

One tuple for every layer: the API's exception handlers (api/problems.py) translate these into
problem+json, and the best-effort paths (a pending row, a refresh, partition upkeep) catch
exactly these and nothing broader. `psycopg.Error` includes `DataError`, a value the server
refused; the API answers that one 422 (`api.problems.store_problem`).
"""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

POSTGRES_ERRORS: tuple[type[BaseException], ...] = (psycopg.Error, PoolTimeout)
