"""Templates for the AI features, uploads included: captions, auto_caption, text suggestions.

Catalogue templates are files every process loads; uploaded ones live in PostgreSQL (their
boxes included: the table is what generation validates uploads against). An upload never
changes once stored (no endpoint edits or deletes one), so a template found here is kept for
the process' life in a bounded LRU, and the suggester's list of uploads grows by incremental
reads, at most one per `refresh_s` and only when a suggestion is asked for, rather than one
query per request. Uploads are listed to everyone (`GET /api/templates`), so all of them are
suggested; there is no private upload to leave out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING

import psycopg
from psycopg_pool import PoolTimeout

from api.problems import store_problem
from domain.ai.suggest import MAX_UPLOADS
from domain.templates import Template, UnknownTemplate

if TYPE_CHECKING:
    from api.dependencies import Services

log = logging.getLogger(__name__)
DB_ERRORS = (psycopg.Error, PoolTimeout)


class TemplateLookup:
    def __init__(self, *, refresh_s: float = 5.0, max_cached: int = 1024) -> None:
        self.refresh_s = refresh_s
        self.max_cached = max_cached
        self._found: OrderedDict[str, Template] = OrderedDict()
        self._newest: datetime | None = None  # created_at of the newest upload read
        self._next_refresh = 0.0
        self._refreshing = asyncio.Lock()

    async def find(self, template_id: str, services: Services) -> Template | None:
        """The catalogue's template, else an upload's; None when neither has the id.

        Raises a 503 problem when PostgreSQL cannot answer for an id the catalogue lacks (a 422
        when it refuses the id itself).
        """
        try:
            return services.catalog.get(template_id)
        except UnknownTemplate:
            pass
        template = self._found.get(template_id)
        if template is not None:
            self._found.move_to_end(template_id)
            return template
        if services.data is None:
            return None
        try:
            record = await services.data.templates.get(template_id)
        except DB_ERRORS as exc:  # a 422 for the client's data, else a 503
            raise store_problem(exc) from exc
        if record is None:  # not remembered: it may be uploaded later
            return None
        template = record.to_template()
        self._found[template_id] = template
        if len(self._found) > self.max_cached:
            self._found.popitem(last=False)
        return template

    async def refresh_suggestions(self, services: Services) -> None:
        """Hands the uploads stored since the last read to the API's model-less suggester, whose
        keyword ranking answers when no inference worker does (the worker reads its own,
        streams/inference_uploads.py). Best effort: with PostgreSQL down, suggestions rank
        what they had (the catalogue at least)."""
        suggester = services.suggester
        if suggester is None or services.data is None or time.monotonic() < self._next_refresh:
            return
        async with self._refreshing:
            if time.monotonic() < self._next_refresh:
                return  # another request refreshed while this one waited
            try:
                records = await services.data.templates.uploads_since(
                    self._newest, limit=MAX_UPLOADS
                )
            except DB_ERRORS as exc:
                log.warning("uploaded templates not refreshed for suggestions: %s", exc)
            else:
                suggester.add_uploads(r.to_template() for r in records)
                if records:
                    newest = records[-1].created_at
                    self._newest = max(self._newest, newest) if self._newest else newest
            self._next_refresh = time.monotonic() + self.refresh_s
