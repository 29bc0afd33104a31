"""Templates in PostgreSQL: the catalog seeded from `templates/`, uploads, listing and search.

Why a table when the catalog is files: listing, filtering and full-text search are queries, and
uploaded templates have no folder. `seed_templates` upserts the file catalog at migrate time, so
the table always agrees with the files the renderer reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from domain.settings import Settings
from domain.templates import Template, TemplateCatalog, TextBox

_UPSERT = (
    "INSERT INTO templates (id, name, category, tags, width, height, animated, boxes,"
    " description, frame_count, source)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'catalog')"
    " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, category = EXCLUDED.category,"
    " tags = EXCLUDED.tags, width = EXCLUDED.width, height = EXCLUDED.height,"
    " animated = EXCLUDED.animated, boxes = EXCLUDED.boxes, description = EXCLUDED.description,"
    " frame_count = EXCLUDED.frame_count, updated_at = now()"
    " WHERE templates.source = 'catalog'"
)


def _row(t: Template) -> tuple[Any, ...]:
    boxes = Jsonb([asdict(b) for b in t.boxes])
    return (
        t.id,
        t.name,
        t.category,
        t.tags,
        t.width,
        t.height,
        t.animated,
        boxes,
        t.description,
        t.frame_count,
    )


def seed_templates(settings: Settings, catalog: TemplateCatalog | None = None) -> int:
    """Upserts every catalog template; returns how many. Uploads are never overwritten."""
    catalog = catalog or TemplateCatalog.default()
    with psycopg.connect(settings.database_url) as conn, conn.cursor() as cursor:
        cursor.executemany(_UPSERT, [_row(t) for t in catalog.all()])
    return len(catalog)


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    id: str
    name: str
    category: str
    tags: list[str]
    width: int
    height: int
    animated: bool
    frame_count: int
    description: str
    boxes: list[dict[str, Any]]
    source: str
    owner_id: str | None
    image_key: str | None
    media_type: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TemplateRecord:
        owner = row["owner_id"]
        return cls(**{**row, "owner_id": str(owner) if owner else None})

    def to_template(self) -> Template:
        """The record as a domain Template: metadata and boxes, what captions and suggestions
        need of an upload. Its pixels live in object storage (`image_key`), not in an artwork
        recipe, so `image()` is not for uploads: the render worker reads the stored file."""
        return Template(
            id=self.id,
            name=self.name,
            tags=list(self.tags),
            category=self.category,
            width=self.width,
            height=self.height,
            boxes=[_text_box(b) for b in self.boxes],
            animated=self.animated,
            frame_count=self.frame_count,
            description=self.description,
        )


_BOX_FIELDS = frozenset(f.name for f in fields(TextBox))


def _text_box(raw: dict[str, Any]) -> TextBox:
    """A stored box (asdict of a TextBox, through JSON) back as a TextBox; keys it does not
    know (an older row's `text`) are dropped, lists that were tuples become tuples again."""
    box = {k: v for k, v in raw.items() if k in _BOX_FIELDS}
    if isinstance(box.get("gradient"), list):
        box["gradient"] = tuple(box["gradient"])
    return TextBox(**box)


_COLUMNS = (
    "id, name, category, tags, width, height, animated, frame_count, description, boxes,"
    " source, owner_id, image_key, media_type, created_at"
)


@dataclass(frozen=True, slots=True)
class NewUpload:
    id: str
    name: str
    category: str
    tags: list[str]
    width: int
    height: int
    frame_count: int
    boxes: list[dict[str, Any]]
    owner_id: str
    image_key: str
    media_type: str
    description: str = ""


#: How far back an incremental read of uploads looks again (see `uploads_since`).
UPLOAD_OVERLAP = timedelta(seconds=60)


class TemplateExists(ValueError):
    """A template with this id already exists."""


class TemplateRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def list(
        self, *, category: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[TemplateRecord]:
        where, params = ("WHERE category = %s", [category]) if category else ("", [])
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM templates {where} ORDER BY category, id"
                " LIMIT %s OFFSET %s",
                (*params, limit, offset),
            )
            rows = await cursor.fetchall()
        return [TemplateRecord.from_row(r) for r in rows]

    async def search(self, query: str, *, limit: int = 20) -> list[TemplateRecord]:
        """Best matches first: web-search syntax ("quoted phrases", -excluded, or)."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM templates, websearch_to_tsquery('english', %s) q"
                " WHERE search @@ q ORDER BY ts_rank(search, q) DESC, id LIMIT %s",
                (query, limit),
            )
            rows = await cursor.fetchall()
        return [TemplateRecord.from_row(r) for r in rows]

    async def get(self, template_id: str) -> TemplateRecord | None:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM templates WHERE id = %s", (template_id,)
            )
            row = await cursor.fetchone()
        return TemplateRecord.from_row(row) if row else None

    async def uploads_since(
        self, after: datetime | None, *, limit: int, overlap: timedelta = UPLOAD_OVERLAP
    ) -> list[TemplateRecord]:
        """Uploads created after `after` minus `overlap`, oldest first; with no `after`, the
        newest `limit` ones. The overlap re-reads uploads whose transaction committed after a
        later one was read (created_at is the transaction's start); callers dedupe by id."""
        async with self.pool.connection() as conn:
            if after is None:
                cursor = await conn.execute(
                    f"SELECT * FROM (SELECT {_COLUMNS} FROM templates WHERE source = 'upload'"
                    " ORDER BY created_at DESC, id DESC LIMIT %s) newest"
                    " ORDER BY created_at, id",
                    (limit,),
                )
            else:
                cursor = await conn.execute(
                    f"SELECT {_COLUMNS} FROM templates WHERE source = 'upload'"
                    " AND created_at > %s ORDER BY created_at, id LIMIT %s",
                    (after - overlap, limit),
                )
            rows = await cursor.fetchall()
        return [TemplateRecord.from_row(r) for r in rows]

    async def add_upload(self, upload: NewUpload) -> TemplateRecord:
        try:
            async with self.pool.connection() as conn:
                cursor = await conn.execute(
                    "INSERT INTO templates (id, name, category, tags, width, height, animated,"
                    " boxes, description, frame_count, source, owner_id, image_key, media_type)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'upload', %s, %s, %s)"
                    f" RETURNING {_COLUMNS}",
                    (
                        upload.id,
                        upload.name,
                        upload.category,
                        upload.tags,
                        upload.width,
                        upload.height,
                        upload.frame_count > 1,
                        Jsonb(upload.boxes),
                        upload.description,
                        upload.frame_count,
                        upload.owner_id,
                        upload.image_key,
                        upload.media_type,
                    ),
                )
                row = await cursor.fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise TemplateExists(upload.id) from exc
        assert row is not None
        return TemplateRecord.from_row(row)

    async def remove_upload(self, template_id: str) -> None:
        """Deletes an upload's row: its image could not be stored (api/routes/templates.py)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM templates WHERE id = %s AND source = 'upload'", (template_id,)
            )
