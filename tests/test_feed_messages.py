"""Which channels a feed event reaches."""

from __future__ import annotations

import pytest

from api.feed.messages import NEW, REVIEW, TRENDING, VOTES, channels_of, valid_channel
from domain.events import FeedEvent, FeedKind
from domain.ids import new_id


def _event(kind: FeedKind, status: str | None = None, user_id: str | None = "ann") -> FeedEvent:
    return FeedEvent(
        meme_id=new_id(), kind=kind, template_id="drake", status=status, user_id=user_id
    )


def test_a_rendered_meme_reaches_new_its_room_and_its_owner() -> None:
    event = _event(FeedKind.RENDERED, "rendered")
    assert set(channels_of(event)) == {NEW, f"meme:{event.meme_id}", "user:ann"}


@pytest.mark.parametrize(
    ("kind", "status"), [(FeedKind.RENDERED, "flagged"), (FeedKind.FAILED, "rejected")]
)
def test_moderated_memes_are_held_back_from_the_public_feed(kind: FeedKind, status: str) -> None:
    """Not even the meme's own room: anyone may follow `meme:<id>`; its owner and admins only."""
    event = _event(kind, status)
    assert set(channels_of(event)) == {"user:ann", REVIEW}
    assert set(channels_of(_event(kind, status, user_id=None))) == {REVIEW}


def test_review_is_a_channel() -> None:
    assert valid_channel(REVIEW)


def test_votes_and_trending_have_their_channels() -> None:
    assert VOTES in channels_of(_event(FeedKind.VOTES, user_id=None))
    assert TRENDING in channels_of(_event(FeedKind.TRENDING, user_id=None))
