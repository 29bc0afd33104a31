"""The trending computation over decoded events, free of Faust and Redis so it is testable alone.

The agent feeds it batches and then drains what changed (to write the tables' changelogs and
the sorted sets once per batch, not once per event). Correctness rules, in the order applied:
a deleted meme (or a failed render, or one moderation holds back for review) ignores
everything, except that a meme held for review comes back with the counts it had when an admin
approves it (a MemeRendered with moderation "approved", later on its partition); an event at or
below the meme's last applied offset of its topic is a replay and is skipped; an event more than
the grace period behind its partition's newest event time is too late; a view whose id was seen
within the grace period is a duplicate; a vote replaces the user's previous one only if it is
newer (event time, then event id).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from domain.events import APPROVED, FLAGGED, MemeDeleted, MemeRendered, RenderStatus, View, Vote
from domain.trending_windows import RECENT_S, RISING_WINDOW, WINDOWS, Window
from streams.trending.score import decay, rising, window_score
from streams.trending.state import (
    MemeState,
    SeenBatch,
    SeenIds,
    VoterState,
    seen_key,
    voter_key,
)

MemeLoader = Callable[[str], MemeState | None]
VoterLoader = Callable[[bytes], VoterState | None]


@dataclass(slots=True)
class Changes:
    memes: set[str] = field(default_factory=set)
    voters: set[bytes] = field(default_factory=set)
    seen: list[SeenBatch] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    votes: set[str] = field(default_factory=set)


class TrendingEngine:
    def __init__(
        self,
        *,
        view_weight: float,
        grace_s: float,
        now: float,
        windows: Iterable[Window] | None = None,
        load_meme: MemeLoader = lambda _: None,
        load_voter: VoterLoader = lambda _: None,
    ) -> None:
        #: Fixed for the engine's life (its records hold one bucket ring per window).
        self.windows: tuple[Window, ...] = tuple(WINDOWS if windows is None else windows)
        self.view_weight = view_weight
        self.grace_s = grace_s
        self.load_meme = load_meme
        self.load_voter = load_voter
        self.landmarks = [w.landmark(now) for w in self.windows]
        self.memes: dict[str, MemeState] = {}
        self.voters: dict[bytes, VoterState] = {}
        self.watermarks: dict[tuple[str, int], float] = {}
        self.seen = SeenIds()
        self.stats: Counter[str] = Counter()
        self._changes = Changes()
        self._batches: dict[tuple[str, int], SeenBatch] = {}
        self._before: dict[bytes, tuple[int, float]] = {}

    # -- state access ---------------------------------------------------------------------

    def meme(self, meme_id: str, partition: int) -> MemeState:
        state = self.memes.get(meme_id)
        if state is None:
            state = self.load_meme(meme_id)
            if state is None:
                state = MemeState.new(partition, len(self.windows))
            self.memes[meme_id] = self._fit(state)
        return self.memes[meme_id]

    def _fit(self, state: MemeState) -> MemeState:
        """A record written before a window was appended to WINDOWS gets its empty ring (rings
        are stored by position, so windows are only ever appended)."""
        state.buckets += [{} for _ in range(len(self.windows) - len(state.buckets))]
        return state

    def voter(self, key: bytes) -> VoterState | None:
        state = self.voters.get(key)
        if state is None:
            state = self.load_voter(key)
            if state is not None:
                self.voters[key] = state
        return state

    def restore(self, memes: Iterable[tuple[str, MemeState]], seen: Iterable[SeenBatch]) -> None:
        """Adds state recovered from the changelogs (state already in memory is newer)."""
        for meme_id, state in memes:
            self.memes.setdefault(meme_id, self._fit(state))
        for batch in seen:
            self.seen.add_batch(batch)
        for state in self.memes.values():
            for topic, t in state.last_t.items():
                key = (topic, state.partition)
                self.watermarks[key] = max(self.watermarks.get(key, 0.0), t)

    def forget(self) -> None:
        """Drops everything cached: after a rebalance the tables are the truth again."""
        self.memes.clear()
        self.voters.clear()
        self.watermarks.clear()
        self.seen = SeenIds()
        self._batches.clear()
        self._before.clear()

    # -- applying events ------------------------------------------------------------------

    def apply(
        self,
        event: object,
        *,
        topic: str,
        partition: int,
        offset: int,
        now: float,
    ) -> None:
        match event:
            case Vote():
                self.apply_vote(event, topic, partition, offset, now)
            case View():
                self.apply_view(event, topic, partition, offset, now)
            case MemeDeleted():
                self.apply_deleted(event.meme_id, topic, partition, offset)
            case MemeRendered() if (
                event.status is RenderStatus.RENDERED and event.moderation == FLAGGED
            ):
                self.apply_held(event.meme_id, topic, partition, offset)
            case MemeRendered() if not event.public:
                # Failed or rejected: out of every set for good, as a deleted meme is.
                self.apply_deleted(event.meme_id, topic, partition, offset)
            case MemeRendered() if event.moderation == APPROVED:
                self.apply_approved(event.meme_id, topic, partition, offset)
            case _:
                self.stats["ignored"] += 1

    def _admit(self, state: MemeState, topic: str, partition: int, offset: int, t: float) -> bool:
        if state.deleted:
            self.stats["deleted"] += 1
            return False
        if offset <= state.offsets.get(topic, -1):
            self.stats["replayed"] += 1
            return False
        mark = (topic, partition)
        watermark = self.watermarks.get(mark, 0.0)
        if t < watermark - self.grace_s:
            self.stats["late"] += 1
            return False
        if t > watermark:
            self.watermarks[mark] = t
        return True

    def _applied(self, meme_id: str, state: MemeState, topic: str, offset: int, t: float) -> None:
        state.offsets[topic] = offset
        if t > state.last_t.get(topic, 0.0):
            state.last_t[topic] = t
        self._changes.memes.add(meme_id)

    def _add(self, state: MemeState, t: float, weight: float, raw: float, now: float) -> None:
        for spec, buckets in zip(self.windows, state.buckets, strict=True):
            start = spec.bucket_of(t)
            if not spec.bucket_live(start, now):
                continue
            bucket = buckets.get(start)
            if bucket is None:
                bucket = buckets[start] = [0.0, 0.0]
            bucket[0] += weight * decay(t, start, spec.half_life_s)
            bucket[1] += raw

    def _remove(self, state: MemeState, t: float, weight: float) -> None:
        for spec, buckets in zip(self.windows, state.buckets, strict=True):
            bucket = buckets.get(spec.bucket_of(t))
            if bucket is not None:
                bucket[0] -= weight * decay(t, spec.bucket_of(t), spec.half_life_s)

    def apply_vote(self, vote: Vote, topic: str, partition: int, offset: int, now: float) -> None:
        t = min(vote.occurred_at.timestamp(), now)
        state = self.meme(vote.meme_id, partition)
        if not self._admit(state, topic, partition, offset, t):
            return
        key = voter_key(vote.meme_id, vote.user_id)
        previous = self.voter(key)
        value = max(-1, min(1, vote.value))
        if previous is not None and not previous.newer(t, vote.event_id):
            if previous.offset == offset and previous.event_id == vote.event_id:
                # The voter record of this very message survived a crash its meme record did
                # not: redo its transition from the vote it replaced.
                self._transition(state, previous.before, (previous.value, previous.t), now)
                self._before.setdefault(key, previous.before)
                self._applied(vote.meme_id, state, topic, offset, t)
                self.stats["redone_vote"] += 1
            else:
                self.stats["stale_vote"] += 1
            return
        before = self._before.get(key)
        if before is None:  # the first change of this voter in the batch
            before = (previous.value, previous.t) if previous is not None else (0, 0.0)
            self._before[key] = before
        current = (previous.value, previous.t) if previous is not None else (0, 0.0)
        self._transition(state, current, (value, t), now)
        self.voters[key] = VoterState(value, t, vote.event_id, offset, before)
        self._changes.voters.add(key)
        self._changes.votes.add(vote.meme_id)
        self._applied(vote.meme_id, state, topic, offset, t)
        self.stats["votes"] += 1

    def _transition(
        self, state: MemeState, old: tuple[int, float], new: tuple[int, float], now: float
    ) -> None:
        """Replaces a user's (value, time) vote on a meme in its buckets and net count."""
        if old[0]:
            self._remove(state, old[1], old[0])
        if new[0]:
            self._add(state, new[1], new[0], 1.0, now)
        state.net += new[0] - old[0]

    def apply_view(self, view: View, topic: str, partition: int, offset: int, now: float) -> None:
        t = min(view.occurred_at.timestamp(), now)
        state = self.meme(view.meme_id, partition)
        if view.event_id in self.seen:
            self.stats["duplicate"] += 1
            return
        if not self._admit(state, topic, partition, offset, t):
            return
        self._add(state, t, self.view_weight, self.view_weight, now)
        batch = self._batches.get((topic, partition))
        if batch is None:
            batch = SeenBatch(seen_key(topic, partition, offset), partition, t, [])
            self._batches[(topic, partition)] = batch
            self.seen.batches.append(batch)
        batch.ids.append(view.event_id)
        batch.max_t = max(batch.max_t, t)
        self.seen.ids.add(view.event_id)
        self._applied(view.meme_id, state, topic, offset, t)
        self.stats["views"] += 1

    def apply_deleted(self, meme_id: str, topic: str, partition: int, offset: int) -> None:
        state = self.meme(meme_id, partition)
        self._changes.deleted.add(meme_id)
        if state.deleted and not state.held:
            return
        state.deleted = True
        state.held = False  # deleted or rejected while in review: for good
        state.buckets = [{} for _ in self.windows]
        state.offsets[topic] = offset
        self._changes.memes.add(meme_id)
        self.stats["deletes"] += 1

    def apply_held(self, meme_id: str, topic: str, partition: int, offset: int) -> None:
        """Flagged for review: out of every set and deaf to later events, as a deleted meme is,
        but its buckets are kept for an approval to restore (votes and views are refused while
        a meme is in review, so nothing is missed meanwhile)."""
        state = self.meme(meme_id, partition)
        if not state.deleted and offset <= state.offsets.get(topic, -1):
            self.stats["replayed"] += 1  # the replay of a flag that an approval has lifted
            return
        self._changes.deleted.add(meme_id)
        if state.deleted:
            return
        state.deleted = state.held = True
        state.offsets[topic] = offset
        self._changes.memes.add(meme_id)
        self.stats["held"] += 1

    def apply_approved(self, meme_id: str, topic: str, partition: int, offset: int) -> None:
        """An admin approved a meme held for review: it may trend again. A meme deleted or
        rejected stays out; one never held (its flag predates this worker's state) is public."""
        state = self.meme(meme_id, partition)
        if not state.held or offset <= state.offsets.get(topic, -1):
            self.stats["ignored"] += 1
            return
        state.deleted = state.held = False
        state.offsets[topic] = offset
        self._changes.memes.add(meme_id)
        self.stats["approved"] += 1

    def drain(self) -> Changes:
        """What changed since the last drain; the seen batches of this drain are sealed."""
        changes, self._changes = self._changes, Changes()
        changes.seen = list(self._batches.values())
        self._batches.clear()
        self._before.clear()
        return changes

    # -- scores ---------------------------------------------------------------------------

    def score(self, state: MemeState, index: int, now: float) -> float:
        spec = self.windows[index]
        live = ((s, b[0]) for s, b in state.buckets[index].items() if spec.bucket_live(s, now))
        return window_score(live, self.landmarks[index], spec.half_life_s)

    def rising(self, state: MemeState, now: float) -> float:
        index = self.windows.index(RISING_WINDOW)
        spec = self.windows[index]
        recent = baseline = 0.0
        for start, bucket in state.buckets[index].items():
            if not spec.bucket_live(start, now):
                continue
            if start + spec.bucket_s > now - RECENT_S:
                recent += bucket[1]
            else:
                baseline += bucket[1]
        return rising(recent, baseline, RECENT_S, spec.length_s)

    def prune(self, now: float) -> set[str]:
        """Drops buckets that left their window; returns the memes with no live bucket left."""
        empty: set[str] = set()
        for meme_id, state in self.memes.items():
            if state.deleted:
                continue
            for spec, buckets in zip(self.windows, state.buckets, strict=True):
                # The oldest bucket first: on most ticks it is live, and so are all the others.
                if buckets and not spec.bucket_live(min(buckets), now):
                    for start in [s for s in buckets if not spec.bucket_live(s, now)]:
                        del buckets[start]
            if not any(state.buckets):
                empty.add(meme_id)
        return empty

    def top(
        self, index: int, n: int, now: float, partitions: set[int] | None = None
    ) -> list[tuple[str, float]]:
        """This worker's best n memes of a window (the union over workers is the global top)."""
        candidates = (
            (meme_id, self.score(state, index, now))
            for meme_id, state in self.memes.items()
            if not state.deleted
            and state.buckets[index]
            and (partitions is None or state.partition in partitions)
        )
        return heapq.nlargest(n, candidates, key=lambda item: (item[1], item[0]))

    def top_rising(
        self, n: int, now: float, partitions: set[int] | None = None
    ) -> list[tuple[str, float]]:
        index = self.windows.index(RISING_WINDOW)
        candidates = (
            (meme_id, self.rising(state, now))
            for meme_id, state in self.memes.items()
            if not state.deleted
            and state.buckets[index]
            and (partitions is None or state.partition in partitions)
        )
        return heapq.nlargest(n, (c for c in candidates if c[1] > 0), key=lambda c: c[1])
