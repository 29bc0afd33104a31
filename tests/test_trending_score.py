"""The trending formula and engine, without Kafka: decay, votes, duplicates, order, deletes."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from domain.events import MemeDeleted, MemeRendered, RenderStatus, View, Vote
from domain.trending_windows import ONE_DAY, ONE_HOUR, ONE_WEEK, WINDOWS
from sinks.redis.trending import set_key
from streams.trending.engine import TrendingEngine
from streams.trending.score import decay, decayed_to, rising, window_score
from streams.trending.state import MemeState, SeenBatch, SeenIds, VoterState

NOW = 1_800_000_000.0 + 1234.5  # a fixed wall clock, 20 minutes into an hour
MEME = "01900000-0000-7000-8000-000000000001"
OTHER = "01900000-0000-7000-8000-000000000002"


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def engine(grace_s: float = 120.0) -> TrendingEngine:
    return TrendingEngine(view_weight=0.1, grace_s=grace_s, now=NOW)


class Feed:
    """Feeds events to an engine with increasing offsets per topic, like one partition."""

    def __init__(self, e: TrendingEngine) -> None:
        self.e = e
        self.offsets: dict[str, int] = {}

    def __call__(self, event: object, topic: str, offset: int | None = None) -> None:
        if offset is None:
            offset = self.offsets.get(topic, -1) + 1
        self.offsets[topic] = max(self.offsets.get(topic, -1), offset)
        self.e.apply(event, topic=topic, partition=0, offset=offset, now=NOW)


def scores(e: TrendingEngine, meme_id: str = MEME) -> list[float]:
    state = e.memes[meme_id]
    return [e.score(state, i, NOW) for i in range(len(WINDOWS))]


def expected(events: list[tuple[float, float]], spec_index: int, e: TrendingEngine) -> float:
    spec = WINDOWS[spec_index]
    return sum(w * 2 ** ((t - e.landmarks[spec_index]) / spec.half_life_s) for t, w in events)


def test_forward_decay_halves_per_half_life() -> None:
    assert decay(100.0 + 900, 100.0, 900) == pytest.approx(2.0)
    assert decay(100.0 - 1800, 100.0, 900) == pytest.approx(0.25)
    assert decayed_to(8.0, 0.0, 2 * 900, 900) == pytest.approx(2.0)


def test_bucket_sums_rebased_to_the_landmark_equal_the_direct_sum() -> None:
    rng = random.Random(1)
    spec = ONE_HOUR
    landmark = spec.landmark(NOW)
    times = [NOW - rng.uniform(0, 3000) for _ in range(200)]
    direct = sum(decay(t, landmark, spec.half_life_s) for t in times)
    buckets: dict[int, float] = {}
    for t in times:
        start = spec.bucket_of(t)
        buckets[start] = buckets.get(start, 0.0) + decay(t, start, spec.half_life_s)
    assert window_score(buckets.items(), landmark, spec.half_life_s) == pytest.approx(direct)


def test_windows_are_explicit() -> None:
    assert [w.name for w in WINDOWS] == ["1h", "24h", "7d"]
    assert [set_key(w.name) for w in WINDOWS] == ["trending:1h", "trending:24h", "trending:7d"]
    for w in (ONE_HOUR, ONE_DAY, ONE_WEEK):
        assert w.length_s % w.bucket_s == 0
        assert w.half_life_s == w.length_s / 4
        assert w.landmark(NOW) <= NOW < w.landmark(NOW) + w.length_s


def test_a_changed_vote_moves_the_score_both_ways_and_zero_withdraws() -> None:
    e = engine()
    feed = Feed(e)
    t1, t2, t3 = NOW - 600, NOW - 300, NOW - 100
    feed(Vote(meme_id=MEME, user_id="ann", value=1, occurred_at=at(t1)), "meme.votes")
    assert scores(e)[0] == pytest.approx(expected([(t1, 1)], 0, e))
    feed(Vote(meme_id=MEME, user_id="ann", value=-1, occurred_at=at(t2)), "meme.votes")
    assert scores(e)[0] == pytest.approx(expected([(t2, -1)], 0, e))
    assert e.memes[MEME].net == -1
    feed(Vote(meme_id=MEME, user_id="ann", value=0, occurred_at=at(t3)), "meme.votes")
    assert scores(e) == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert e.memes[MEME].net == 0


def test_one_vote_per_user_counts() -> None:
    e = engine()
    feed = Feed(e)
    for i in range(5):
        feed(Vote(meme_id=MEME, user_id="ann", value=1, occurred_at=at(NOW - 50 + i)), "meme.votes")
    feed(Vote(meme_id=MEME, user_id="bob", value=1, occurred_at=at(NOW - 10)), "meme.votes")
    assert e.memes[MEME].net == 2
    assert scores(e)[1] == pytest.approx(expected([(NOW - 46, 1), (NOW - 10, 1)], 1, e))


def test_duplicates_never_double_count() -> None:
    e = engine()
    feed = Feed(e)
    view = View(meme_id=MEME, occurred_at=at(NOW - 30))
    vote = Vote(meme_id=MEME, user_id="ann", value=1, occurred_at=at(NOW - 20))
    for _ in range(3):  # produced three times: new offsets, same event ids
        feed(view, "meme.views")
        feed(vote, "meme.votes")
    assert scores(e)[0] == pytest.approx(expected([(NOW - 30, 0.1), (NOW - 20, 1)], 0, e))
    assert e.stats["duplicate"] == 2
    assert e.stats["stale_vote"] == 2


def test_a_replayed_offset_is_skipped_even_with_a_new_event_id() -> None:
    e = engine()
    feed = Feed(e)
    feed(View(meme_id=MEME, occurred_at=at(NOW - 5)), "meme.views", offset=7)
    feed(View(meme_id=MEME, occurred_at=at(NOW - 5)), "meme.views", offset=7)
    assert e.stats["replayed"] == 1
    assert e.stats["views"] == 1


def test_out_of_order_within_grace_equals_in_order() -> None:
    rng = random.Random(7)
    events: list[Vote | View] = []
    for i in range(300):
        t = NOW - 1000 + i * 3
        if rng.random() < 0.5:
            events.append(View(meme_id=MEME, occurred_at=at(t)))
        else:
            value = rng.choice([-1, 0, 1])
            events.append(
                Vote(meme_id=MEME, user_id=f"u{rng.randrange(20)}", value=value, occurred_at=at(t))
            )
    ordered, shuffled = engine(), engine()
    feed = Feed(ordered)
    for event in events:
        feed(event, "meme.views" if isinstance(event, View) else "meme.votes")
    # Displace each event by up to 100 s (the grace is 120 s).
    jittered = sorted(events, key=lambda ev: ev.occurred_at.timestamp() + rng.uniform(0, 100))
    feed = Feed(shuffled)
    for event in jittered:
        feed(event, "meme.views" if isinstance(event, View) else "meme.votes")
    assert shuffled.stats["late"] == 0
    assert scores(shuffled) == pytest.approx(scores(ordered), rel=1e-9, abs=1e-9)
    assert shuffled.memes[MEME].net == ordered.memes[MEME].net


def test_events_later_than_the_grace_are_not_counted() -> None:
    e = engine(grace_s=60)
    feed = Feed(e)
    feed(View(meme_id=MEME, occurred_at=at(NOW - 10)), "meme.views")
    feed(View(meme_id=MEME, occurred_at=at(NOW - 65)), "meme.views")  # 55 s late: counted
    feed(View(meme_id=MEME, occurred_at=at(NOW - 75)), "meme.views")  # 65 s late: dropped
    assert e.stats["late"] == 1
    assert scores(e)[0] == pytest.approx(expected([(NOW - 10, 0.1), (NOW - 65, 0.1)], 0, e))


def test_an_event_older_than_a_window_counts_only_in_the_longer_windows() -> None:
    e = engine()
    Feed(e)(Vote(meme_id=MEME, user_id="ann", value=1, occurred_at=at(NOW - 7200)), "meme.votes")
    one_hour, one_day, one_week = scores(e)
    assert one_hour == 0.0
    assert one_day == pytest.approx(expected([(NOW - 7200, 1)], 1, e))
    assert one_week == pytest.approx(expected([(NOW - 7200, 1)], 2, e))


def test_buckets_leave_the_window_as_time_passes() -> None:
    e = engine()
    Feed(e)(Vote(meme_id=MEME, user_id="ann", value=1, occurred_at=at(NOW - 10)), "meme.votes")
    later = NOW + 3600 + 60
    assert e.prune(later) == set()  # still in the 24h and 7d windows
    assert e.memes[MEME].buckets[0] == {}
    assert e.top(0, 10, later) == []
    assert [m for m, _ in e.top(1, 10, later)] == [MEME]


def test_a_deleted_meme_ignores_later_events() -> None:
    e = engine()
    feed = Feed(e)
    feed(Vote(meme_id=MEME, user_id="ann", value=1, occurred_at=at(NOW - 10)), "meme.votes")
    feed(MemeDeleted(meme_id=MEME), "meme.deleted")
    feed(Vote(meme_id=MEME, user_id="bob", value=1, occurred_at=at(NOW - 5)), "meme.votes")
    changes = e.drain()
    assert changes.deleted == {MEME}
    assert e.memes[MEME].deleted
    assert e.top(0, 10, NOW) == []


def rendered(meme_id: str, status: RenderStatus, moderation: str | None) -> MemeRendered:
    return MemeRendered(
        meme_id=meme_id,
        template_id="drake",
        status=status,
        variants=[],
        render_ms=5.0,
        requested_at=at(NOW - 20),
        moderation=moderation,
    )


@pytest.mark.parametrize(
    ("status", "moderation", "trends"),
    [
        (RenderStatus.RENDERED, None, True),
        (RenderStatus.RENDERED, "ok", True),
        (RenderStatus.RENDERED, "flagged", False),
        (RenderStatus.FAILED, "rejected", False),
        (RenderStatus.FAILED, None, False),
    ],
)
def test_only_public_memes_trend(
    status: RenderStatus, moderation: str | None, trends: bool
) -> None:
    """A meme moderation holds back for review leaves the sets as a deleted one does."""
    e = engine()
    feed = Feed(e)
    feed(Vote(meme_id=MEME, user_id="ann", value=1, occurred_at=at(NOW - 10)), "meme.votes")
    feed(Vote(meme_id=OTHER, user_id="ann", value=1, occurred_at=at(NOW - 10)), "meme.votes")
    feed(rendered(MEME, status, moderation), "meme.rendered")
    changes = e.drain()
    assert (MEME in changes.deleted) is not trends
    ranked = {m for m, _ in e.top(0, 10, NOW)}
    assert ranked == ({MEME, OTHER} if trends else {OTHER})


def test_ranking_and_ties() -> None:
    e = engine()
    feed = Feed(e)
    for user in ("a", "b"):
        feed(Vote(meme_id=OTHER, user_id=user, value=1, occurred_at=at(NOW - 10)), "meme.votes")
    feed(Vote(meme_id=MEME, user_id="a", value=1, occurred_at=at(NOW - 10)), "meme.votes")
    assert [m for m, _ in e.top(0, 10, NOW)] == [OTHER, MEME]
    assert [m for m, _ in e.top(0, 1, NOW)] == [OTHER]


def test_rising_compares_recent_engagement_with_the_memes_own_baseline() -> None:
    assert rising(10, 0, 300, 3600) == pytest.approx(10.0)
    assert rising(1, 11, 300, 3600) == pytest.approx(0.0)
    steady, burst = engine(), engine()
    for minute in range(55):
        t = NOW - 3300 + minute * 60
        for user in range(2):
            vote = Vote(meme_id=MEME, user_id=f"{minute}-{user}", value=1, occurred_at=at(t))
            Feed(steady)(vote, "meme.votes", offset=minute * 2 + user)
    for i in range(20):
        vote = Vote(meme_id=MEME, user_id=f"b{i}", value=1, occurred_at=at(NOW - 60))
        Feed(burst)(vote, "meme.votes", offset=i)
    assert burst.rising(burst.memes[MEME], NOW) > 3
    assert steady.rising(steady.memes[MEME], NOW) < 1


def test_state_records_round_trip() -> None:
    e = engine()
    Feed(e)(Vote(meme_id=MEME, user_id="ann", value=1, occurred_at=at(NOW - 10)), "meme.votes")
    state = e.memes[MEME]
    assert MemeState.decode(state.encode()) == state
    voter = VoterState(1, NOW, "e1", 42, (-1, NOW - 5))
    assert VoterState.decode(voter.encode()) == voter
    batch = SeenBatch(b"k", 3, NOW, ["a", "b"])
    assert SeenBatch.decode(b"k", batch.encode()) == batch


def test_seen_ids_expire_oldest_batches() -> None:
    seen = SeenIds()
    seen.add_batch(SeenBatch(b"1", 0, NOW - 500, ["a"]))
    seen.add_batch(SeenBatch(b"2", 0, NOW - 10, ["b"]))
    gone = seen.expire(NOW - 100)
    assert [b.key for b in gone] == [b"1"]
    assert "a" not in seen and "b" in seen
    assert math.isfinite(NOW)


def test_a_voter_record_that_outlived_its_meme_record_is_redone_on_replay() -> None:
    """A crash kept a batch's voter record but not its meme record (written after it)."""
    disk: dict[bytes, bytes] = {}
    first = engine()
    feed = Feed(first)
    feed(Vote(meme_id=MEME, user_id="ann", value=1, occurred_at=at(NOW - 60)), "meme.votes")
    feed(View(meme_id=MEME, occurred_at=at(NOW - 59)), "meme.views")
    first.drain()
    disk[b"meme"] = first.memes[MEME].encode()  # batch 1: fully written
    batch = [
        Vote(meme_id=MEME, user_id="ann", value=-1, occurred_at=at(NOW - 30)),
        Vote(meme_id=MEME, user_id="bob", value=1, occurred_at=at(NOW - 29)),
        Vote(meme_id=MEME, user_id="ann", value=0, occurred_at=at(NOW - 20)),
    ]
    for vote in batch:
        feed(vote, "meme.votes")
    changes = first.drain()
    ann = next(k for k in changes.voters if k.endswith(b"|ann"))
    survived = {ann: first.voters[ann].encode()}  # batch 2: only ann's record reached disk

    second = TrendingEngine(
        view_weight=0.1,
        grace_s=120,
        now=NOW,
        load_meme=lambda _: MemeState.decode(disk[b"meme"]),
        load_voter=lambda key: VoterState.decode(survived[key]) if key in survived else None,
    )
    replay = Feed(second)
    replay.offsets = {"meme.votes": 0}  # batch 2 starts after offset 0 of meme.votes
    for vote in batch:
        replay(vote, "meme.votes")
    assert second.stats["redone_vote"] == 1
    assert scores(second) == pytest.approx(scores(first), rel=1e-12, abs=1e-12)
    assert second.memes[MEME].net == first.memes[MEME].net == 1
    # The same event produced again (a new offset) is a duplicate, not a redo.
    replay(batch[-1], "meme.votes")
    assert second.stats["redone_vote"] == 1
    assert scores(second) == pytest.approx(scores(first), rel=1e-12, abs=1e-12)
