"""Uploaded templates for text suggestions, read from PostgreSQL by incremental reads.

The API's model-less suggester (its keyword ranking answers when no inference worker does) and
the inference worker's suggester both hold the uploads this refresher hands them. Why a worker
reads them itself rather than getting them in each request: a suggestion ranks the text against
up to MAX_UPLOADS uploads (each embedded once per loaded model), and sending 2,000 documents
with every request would cost more than the ranking. Captions are the other way round: one
template, which the API has already looked up, so its boxes travel in the request
(domain/ai/contract.py). Uploads never change, so the list grows by incremental reads, at most
one per `refresh_s` and only when a suggestion is asked for; with PostgreSQL down, suggestions
rank what was read before (the catalogue at least). Uploads are listed to everyone
(`GET /api/templates`), so all of them are suggested; there is no private upload to leave out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from domain.ai.suggest import MAX_UPLOADS, TemplateSuggester
from sinks.postgres.errors import POSTGRES_ERRORS
from sinks.postgres.templates import TemplateRepository

log = logging.getLogger(__name__)


class UploadRefresher:
    def __init__(self, templates: TemplateRepository, *, refresh_s: float = 5.0) -> None:
        self.templates = templates
        self.refresh_s = refresh_s
        self._newest: datetime | None = None  # created_at of the newest upload read
        self._next_refresh = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self, suggester: TemplateSuggester) -> None:
        """Hands the uploads stored since the last read to the suggester (best effort)."""
        if time.monotonic() < self._next_refresh:
            return
        async with self._lock:
            if time.monotonic() < self._next_refresh:
                return  # another request refreshed while this one waited
            try:
                records = await self.templates.uploads_since(self._newest, limit=MAX_UPLOADS)
            except POSTGRES_ERRORS as exc:
                log.warning("uploaded templates not refreshed for suggestions: %s", exc)
            else:
                suggester.add_uploads(r.to_template() for r in records)
                if records:
                    newest = records[-1].created_at
                    self._newest = max(self._newest, newest) if self._newest else newest
            self._next_refresh = time.monotonic() + self.refresh_s
