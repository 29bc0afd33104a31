"""sinks/postgres/template_lookup.py against the real PostgreSQL: the catalogue first, uploads
from their row, an upload's row read once per process, unknown ids never remembered."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from domain.settings import Settings
from domain.templates import TemplateCatalog
from sinks.postgres.pool import create_pool
from sinks.postgres.template_lookup import TemplateLookup
from sinks.postgres.templates import NewUpload, TemplateRecord, TemplateRepository

pytestmark = pytest.mark.services


class CountingRepository(TemplateRepository):
    """The real repository, counting the rows it is asked for."""

    gets = 0

    async def get(self, template_id: str) -> TemplateRecord | None:
        self.gets += 1
        return await super().get(template_id)


@pytest.fixture
async def repository(stack_settings: Settings) -> AsyncIterator[CountingRepository]:
    pool = create_pool(stack_settings)
    await pool.open(wait=True)
    try:
        yield CountingRepository(pool)
    finally:
        await pool.close()


@pytest.fixture
async def upload_id(repository: CountingRepository) -> AsyncIterator[str]:
    owner = str(uuid.uuid4())
    async with repository.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO users (id, username, password_hash) VALUES (%s, %s, 'x')",
            (owner, f"lookup{owner[:8]}"),
        )
    template_id = f"u-lookup-{uuid.uuid4().hex[:8]}"
    await repository.add_upload(
        NewUpload(
            id=template_id,
            name="Lookup test",
            category="uploads",
            tags=[],
            width=300,
            height=200,
            frame_count=1,
            boxes=[{"name": "top", "x": 10, "y": 10, "width": 280, "height": 50}],
            owner_id=owner,
            image_key=f"templates/uploads/{template_id}/original.png",
            media_type="image/png",
        )
    )
    try:
        yield template_id
    finally:
        await repository.remove_upload(template_id)
        async with repository.pool.connection() as conn:
            await conn.execute("DELETE FROM users WHERE id = %s", (owner,))


async def test_catalogue_templates_need_no_database() -> None:
    catalog = TemplateCatalog.default()
    lookup = TemplateLookup(catalog, None)
    first = catalog.all()[0]
    assert await lookup.find(first.id) is first
    assert await lookup.upload(first.id) is None  # the catalogue's ids have no upload row
    assert await lookup.find("no-such-template") is None


async def test_an_upload_is_read_once_and_kept(
    repository: CountingRepository, upload_id: str
) -> None:
    lookup = TemplateLookup(TemplateCatalog.default(), repository)
    template = await lookup.find(upload_id)
    assert template is not None
    assert (template.width, template.height, len(template.boxes)) == (300, 200, 1)
    assert template.boxes[0].name == "top"
    record = await lookup.upload(upload_id)
    assert record is not None and record.image_key and record.image_key.endswith("original.png")
    assert await lookup.find(upload_id) is template
    assert repository.gets == 1, "an upload never changes: its row is read once"


async def test_unknown_ids_are_asked_again_and_the_cache_is_bounded(
    repository: CountingRepository, upload_id: str
) -> None:
    lookup = TemplateLookup(TemplateCatalog.default(), repository, max_cached=1)
    assert await lookup.find("u-never-uploaded") is None
    assert await lookup.find("u-never-uploaded") is None
    assert repository.gets == 2, "an id nobody uploaded may be uploaded later"
    assert await lookup.find(upload_id) is not None
    assert await lookup.upload(upload_id) is not None
    assert repository.gets == 3
