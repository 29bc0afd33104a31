"""Event helpers shared by several writers: the feed's view of a render or a review decision."""

from __future__ import annotations

import pytest

from domain.events import (
    APPROVED,
    REVIEW_LABEL,
    FeedEvent,
    FeedKind,
    MemeRendered,
    MemeRequested,
    RenderStatus,
)
from domain.ids import new_id


def outcome(status: RenderStatus, moderation: str | None, label: str | None = None) -> MemeRendered:
    request = MemeRequested(meme_id=new_id(), template_id="drake", texts=["a"], user_id="u1")
    return MemeRendered.for_request(
        request,
        status=status,
        variants=[],
        render_ms=1.0,
        moderation=moderation,
        moderation_label=label,
    )


@pytest.mark.parametrize(
    ("status", "moderation", "label", "kind", "shown"),
    [
        (RenderStatus.RENDERED, None, None, FeedKind.RENDERED, "rendered"),
        (RenderStatus.RENDERED, "ok", None, FeedKind.RENDERED, "rendered"),
        (RenderStatus.RENDERED, "flagged", None, FeedKind.RENDERED, "flagged"),
        (RenderStatus.FAILED, None, None, FeedKind.FAILED, "failed"),
        (RenderStatus.FAILED, "rejected", None, FeedKind.FAILED, "rejected"),
        (RenderStatus.RENDERED, APPROVED, REVIEW_LABEL, FeedKind.RENDERED, "rendered"),
        (RenderStatus.FAILED, "rejected", REVIEW_LABEL, FeedKind.FAILED, "rejected"),
    ],
)
def test_the_feed_event_of_a_render_or_a_review(
    status: RenderStatus, moderation: str | None, label: str | None, kind: FeedKind, shown: str
) -> None:
    rendered = outcome(status, moderation, label)
    event = FeedEvent.for_render(rendered)
    assert (event.kind, event.status) == (kind, shown)
    assert event.event_id == rendered.event_id  # a replay of the render dedupes on the feed
    assert (event.meme_id, event.template_id, event.user_id) == (
        rendered.meme_id,
        "drake",
        "u1",
    )
