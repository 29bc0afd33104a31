"""The trending engine and an admin's review: a meme held for review comes back when approved,
with the counts it had, and stays out for good when rejected or deleted (no Kafka, no Redis)."""

from __future__ import annotations

import orjson

from domain.events import APPROVED, REVIEW_LABEL, MemeDeleted, MemeRendered, RenderStatus, Vote
from streams.trending.engine import TrendingEngine
from streams.trending.state import MemeState
from tests.test_trending_score import MEME, NOW, OTHER, Feed, at, engine, rendered, scores

RENDERED = "meme.rendered"


def flagged() -> MemeRendered:
    return rendered(MEME, RenderStatus.RENDERED, "flagged")


def decision(approved: bool) -> MemeRendered:
    """What api/routes/review.py produces for a decision."""
    status = RenderStatus.RENDERED if approved else RenderStatus.FAILED
    event = rendered(MEME, status, APPROVED if approved else "rejected")
    event.moderation_label = REVIEW_LABEL
    return event


def vote(user: str, t: float, meme_id: str = MEME) -> Vote:
    return Vote(meme_id=meme_id, user_id=user, value=1, occurred_at=at(t))


def ranked(e: TrendingEngine) -> set[str]:
    return {m for m, _ in e.top(0, 10, NOW)}


def test_an_approved_meme_trends_again_with_the_counts_it_had() -> None:
    e = engine()
    feed = Feed(e)
    feed(vote("ann", NOW - 10), "meme.votes")
    feed(vote("ann", NOW - 10, OTHER), "meme.votes")
    before = scores(e)
    feed(flagged(), RENDERED)
    assert MEME in e.drain().deleted
    assert ranked(e) == {OTHER}
    feed(vote("bob", NOW - 5), "meme.votes")  # refused while held, as by a deleted meme
    assert e.stats["deleted"] == 1
    feed(decision(approved=True), RENDERED)
    changes = e.drain()
    assert MEME in changes.memes and MEME not in changes.deleted
    assert ranked(e) == {MEME, OTHER}
    assert scores(e) == before
    feed(vote("bob", NOW - 2), "meme.votes")  # counts again
    assert all(after > was for after, was in zip(scores(e), before, strict=True))
    assert e.memes[MEME].net == 2


def test_a_rejected_or_deleted_meme_in_review_stays_out_for_good() -> None:
    endings = ((decision(approved=False), RENDERED), (MemeDeleted(meme_id=MEME), "meme.deleted"))
    for ending, topic in endings:
        e = engine()
        feed = Feed(e)
        feed(vote("ann", NOW - 10), "meme.votes")
        feed(flagged(), RENDERED)
        feed(ending, topic)
        state = e.memes[MEME]
        assert state.deleted and not state.held and state.buckets == [{}, {}, {}]
        feed(decision(approved=True), RENDERED)  # a late approval cannot bring it back
        feed(vote("bob", NOW - 5), "meme.votes")
        assert e.memes[MEME].deleted
        assert ranked(e) == set()


def test_an_approval_without_a_hold_changes_nothing() -> None:
    """A meme whose flag this worker never saw is public already; a deleted one stays gone."""
    e = engine()
    feed = Feed(e)
    feed(vote("ann", NOW - 10), "meme.votes")
    feed(decision(approved=True), RENDERED)
    assert ranked(e) == {MEME} and e.stats["ignored"] == 1
    feed(MemeDeleted(meme_id=MEME), "meme.deleted")
    feed(decision(approved=True), RENDERED)
    assert ranked(e) == set()


def test_replayed_flags_and_approvals_end_in_the_same_state() -> None:
    """After a crash the rendered topic is read again from the committed offset: a flag an
    approval lifted (lower offset) must not hold the meme again."""
    e = engine()
    feed = Feed(e)
    feed(vote("ann", NOW - 10), "meme.votes")
    feed(flagged(), RENDERED, offset=4)
    feed(decision(approved=True), RENDERED, offset=5)
    assert ranked(e) == {MEME}
    feed(flagged(), RENDERED, offset=4)
    feed(decision(approved=True), RENDERED, offset=5)
    assert ranked(e) == {MEME} and not e.memes[MEME].held
    assert e.stats["replayed"] == 1


def test_the_held_flag_survives_the_changelog_and_old_records_read_as_not_held() -> None:
    e = engine()
    feed = Feed(e)
    feed(vote("ann", NOW - 10), "meme.votes")
    feed(flagged(), RENDERED)
    state = e.memes[MEME]
    assert MemeState.decode(state.encode()) == state and state.held
    old = orjson.loads(state.encode())
    del old["h"]
    assert not MemeState.decode(orjson.dumps(old)).held
