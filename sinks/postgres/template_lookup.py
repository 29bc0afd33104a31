"""Finding a template by id: the catalogue's files first, else an upload's PostgreSQL row.

The API (generate and batch validation, captions, auto_caption) and the render worker both ask
this one lookup, so a template the API accepts is the one the worker renders. An upload never
changes once stored (no endpoint edits or deletes one; only an upload whose image could not be
stored is removed, before its id was ever answered), so a row found here is kept for the
process' life in a bounded LRU: one query per upload and process, not one per request. Ids
nobody uploaded are not remembered: they may be uploaded later. Store errors propagate
(`sinks.postgres.errors.POSTGRES_ERRORS`): the API's handlers answer them, the worker waits
them out.
"""

from __future__ import annotations

from collections import OrderedDict

from domain.templates import Template, TemplateCatalog, UnknownTemplate
from sinks.postgres.templates import TemplateRecord, TemplateRepository


class TemplateLookup:
    def __init__(
        self,
        catalog: TemplateCatalog,
        repository: TemplateRepository | None,
        *,
        max_cached: int = 1024,
    ) -> None:
        self.catalog = catalog
        self.repository = repository  # None: no PostgreSQL, the catalogue only
        self.max_cached = max_cached
        self._uploads: OrderedDict[str, tuple[TemplateRecord, Template]] = OrderedDict()

    async def find(self, template_id: str) -> Template | None:
        """The catalogue's template, else an upload's (metadata and boxes); None when neither
        has the id."""
        try:
            return self.catalog.get(template_id)
        except UnknownTemplate:
            pass
        found = await self._upload(template_id)
        return None if found is None else found[1]

    async def upload(self, template_id: str) -> TemplateRecord | None:
        """The upload's row (image key, boxes as stored); None for the catalogue's ids and for
        ids nobody uploaded."""
        if template_id in self.catalog:
            return None
        found = await self._upload(template_id)
        return None if found is None else found[0]

    async def _upload(self, template_id: str) -> tuple[TemplateRecord, Template] | None:
        found = self._uploads.get(template_id)
        if found is not None:
            self._uploads.move_to_end(template_id)
            return found
        if self.repository is None:
            return None
        record = await self.repository.get(template_id)
        if record is None:
            return None
        found = (record, record.to_template())
        self._uploads[template_id] = found
        if len(self._uploads) > self.max_cached:
            self._uploads.popitem(last=False)
        return found
