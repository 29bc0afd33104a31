"""A meme's row as the API shows it: status, metadata and the URL of each image size."""

from __future__ import annotations

from typing import Any

from api.models import ImageInfo, MemeView
from sinks.postgres.memes import MemeRecord


def image_infos(meme_id: str, variants: list[dict[str, Any]]) -> dict[str, ImageInfo]:
    """Each stored size of a meme's image as the API links it (meme reads and the review queue)."""
    return {
        v["size"]: ImageInfo(
            url=f"/api/meme/{meme_id}/image?size={v['size']}",
            width=v["width"],
            height=v["height"],
            bytes=v["bytes"],
            media_type=v["media_type"],
        )
        for v in variants
    }


def meme_view(record: MemeRecord) -> MemeView:
    return MemeView(
        id=record.id,
        status=record.status,  # type: ignore[arg-type]
        template_id=record.template_id,
        texts=record.texts,
        format=record.format,
        created_at=record.created_at,
        rendered_at=record.rendered_at,
        render_ms=record.render_ms,
        error=record.error,
        images=image_infos(record.id, record.variants),
        sentiment=record.sentiment,
    )
