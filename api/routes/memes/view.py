"""A meme's row as the API shows it: status, metadata and the URL of each image size."""

from __future__ import annotations

from api.models import ImageInfo, MemeView
from sinks.postgres.memes import MemeRecord


def meme_view(record: MemeRecord) -> MemeView:
    images = {
        v["size"]: ImageInfo(
            url=f"/api/meme/{record.id}/image?size={v['size']}",
            width=v["width"],
            height=v["height"],
            bytes=v["bytes"],
            media_type=v["media_type"],
        )
        for v in record.variants
    }
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
        images=images,
        sentiment=record.sentiment,
    )
