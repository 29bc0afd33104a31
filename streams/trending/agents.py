"""The `trending` role's Faust agent, state store and timers.

One agent reads the four co-partitioned topics (all keyed by meme id, same partition count) in
batches of what the consumer fetched (`streams/faust_compat/batches.py`): it applies the batch
to the engine, writes each changed record once to the table's changelog (explicitly to the source
partition, so a table partition always holds the memes of the same-numbered topic partitions)
and updates the sorted sets in one pipelined round trip. Faust commits offsets only after the
producer flushed those changelog writes (at-least-once; replays are absorbed, see engine.py
and state.py).

Every second, the vote counts that changed go to `meme.feed` (the 200 best-scored memes at
most: a live feed, not a log). The tick (every TRENDING_TICK_S) drops buckets that left their
window, moves the decay landmark once per window length, re-adds this worker's top N to each
set (memes a trim pushed out come back when others fall), refreshes `trending:rising` and
announces memes that enter the hour's top ten on the feed.

The table is a `ChangelogStore` (streams/changelog.py), not a Faust table: writes name their
partition explicitly, and the partitions a rebalance assigns are read back from the changelog
in bulk before the first batch of theirs is applied (Faust restored about 5,000 records/s, so
every rescale left the moved memes a minute stale).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from typing import Any

import faust
from confluent_kafka import KafkaException
from faust.types import Message

from domain.events import FeedEvent, FeedKind
from domain.metrics import count_consumed, observe_trending_freshness
from domain.settings import Settings
from domain.tracing import consume_batch_span, get_tracer
from producers.producer import EventProducer
from producers.roles import TRENDING
from producers.serialization import AvroCodec, SerializationError
from producers.topics import MEME_FEED, MEME_VOTES
from sinks.redis.client import REDIS_ERRORS, create_redis
from sinks.redis.trending import RISING_KEY, Decay, TrendingSets, set_key
from streams.changelog import ChangelogStore
from streams.dlq import dead_letter_message
from streams.faust_compat import batches
from streams.schema_wait import decode_holding
from streams.trending.engine import Changes, TrendingEngine
from streams.trending.score import decayed_to
from streams.trending.state import (
    MEME,
    SEEN,
    VOTER,
    MemeState,
    SeenBatch,
    VoterState,
    meme_key,
    voter_meme,
)

log = logging.getLogger(__name__)
tracer = get_tracer(__name__)
#: Vote counts go to the feed once a second, at most this many memes each time.
FEED_INTERVAL_S = 1.0
FEED_VOTES_MAX = 200
FEED_TOP = 10
#: `trending:rising` is recomputed every this many ticks (it looks at 5-minute spans).
RISING_EVERY = 3
#: How often records older than every window are deleted from the table (and its changelog).
SWEEP_EVERY_S = 3600.0


class TrendingWorker:
    def __init__(self, app: faust.App, settings: Settings, table: ChangelogStore) -> None:
        self.app = app
        self.settings = settings
        self.table = table
        self.load_lock = asyncio.Lock()
        # Held by a batch from its first event to its changelog writes: a revocation waits for
        # it, so the records of partitions that move are in the log before the next owner
        # reads it (Faust does not wait for in-flight events here: stream_wait_empty=False).
        self.batch_lock = asyncio.Lock()
        self.codec = AvroCodec.from_settings(self.settings)
        self.engine = TrendingEngine(
            view_weight=settings.trending_view_weight,
            grace_s=settings.trending_grace_s,
            now=time.time(),
            load_meme=self._load_meme,
            load_voter=self._load_voter,
        )
        self.windows = self.engine.windows
        self.keys = [set_key(w.name) for w in self.windows]
        self.published: list[set[str]] = [set() for _ in self.windows]
        self.published_rising: set[str] = set()
        self.pending_removals: set[str] = set()
        self.top_feed: set[str] = set()
        self.feed_pending: set[str] = set()
        self.loaded = False
        self.ready = False  # between a revoke and the end of the tables' recovery: False
        self.sets: TrendingSets | None = None
        self.producer: EventProducer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._redis_down_logged = 0.0
        self.processed = 0
        self.ticks = 0
        # Scores are computed and written under this lock, by the batch path and the tick
        # alike, so Redis never receives an older computation after a newer one.
        self.redis_lock = asyncio.Lock()
        self.resync = True
        self._swept = time.monotonic()
        self.batches = 0
        self._stats_logged = 0.0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self.sets is None:
            self.sets = TrendingSets(create_redis(self.settings), self.settings.trending_top_n)
            self.producer = EventProducer(self.settings, client_id=f"{self.app.conf.id}-producer")

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close()

    def forget(self) -> None:
        self.engine.forget()
        self.loaded = False
        self.ready = False

    def recovered(self) -> None:
        """The tables hold the assigned partitions' state: decode it afresh at the next use."""
        self.engine.forget()
        self.loaded = False
        self.ready = True
        self.resync = True

    def active_partitions(self) -> set[int]:
        return {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic in TRENDING.topics
        }

    def _load_meme(self, meme_id: str) -> MemeState | None:
        data = self.table.get(meme_key(meme_id))
        return MemeState.decode(data) if data else None

    def _load_voter(self, key: bytes) -> VoterState | None:
        data = self.table.get(key)
        return VoterState.decode(data) if data else None

    async def ensure_loaded(self, needed: frozenset[int] = frozenset()) -> None:
        """After (re)assignment: the store reads the partitions it lacks from the changelog in
        bulk, then the engine decodes the memes and seen ids of the assigned partitions once.
        `needed`: partitions of a batch's messages, which must be loaded whatever the flags."""
        async with self.load_lock:
            while True:
                wanted = self._wanted(needed)
                missing = wanted - self.table.loaded
                if not missing and (self.loaded or not wanted):
                    return
                try:
                    if missing and not await self.table.recover(missing):
                        continue  # a rebalance overtook the read: what is assigned now?
                except (KafkaException, TimeoutError) as exc:
                    # The batch waits, unapplied and unacknowledged, until Kafka answers.
                    log.warning("trending: changelog read failed, retrying: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                if wanted != self._wanted(needed):
                    continue
                if missing:
                    records, elapsed = self.table.last_recovery
                    log.info(
                        "trending changelog read: %d records of partitions %s in %.2f s",
                        records,
                        sorted(missing),
                        elapsed,
                    )
                self._decode(wanted)

    def _wanted(self, needed: frozenset[int]) -> set[int]:
        return (self.active_partitions() if self.ready else set()) | needed

    def _decode(self, partitions: set[int]) -> None:
        self.engine.forget()
        memes = []
        for partition, key, data in self.table.items(MEME):
            if partition in partitions:
                memes.append((key[len(MEME) :].decode(), MemeState.decode(data)))
        seen = []
        for partition, key, data in self.table.items(SEEN):
            if partition in partitions:
                seen.append(SeenBatch.decode(key, data))
        seen.sort(key=lambda b: b.max_t)
        self.engine.restore(memes, seen)
        self.loaded = True
        log.info("trending state loaded: %d memes, %d seen batches", len(memes), len(seen))

    # -- the batch path -------------------------------------------------------------------

    async def process(self, messages: list[Message]) -> None:
        """One CONSUMER span per batch, linked to its messages' producer spans (capped), so a
        request's trace reaches the batch that counted it: no span per event on this path."""
        with consume_batch_span(
            "trending",
            (message.headers for message in messages),
            count=len(messages),
            group=self.app.conf.id,
            tracer=tracer,
        ):
            async with self.batch_lock:
                await self._process(messages)

    async def _process(self, messages: list[Message]) -> None:
        self.start()
        owned = self.app.consumer.assignment()
        generation = self.app.consumer_generation_id
        await self.ensure_loaded(
            frozenset(
                m.partition for m in messages if m.generation_id == generation and m.tp in owned
            )
        )
        now = time.time()
        owned = self.app.consumer.assignment()
        generation = self.app.consumer_generation_id
        consumed: list[str] = []  # the topics of the messages this generation owns
        oldest = now  # the Kafka time of the batch's oldest event: its freshness sample
        for message in messages:
            # Fetched before the last rebalance: Faust seeks back to the committed offset and
            # delivers it again, in order; applying this copy first would make the per-meme
            # offset check skip the messages before it.
            if message.generation_id != generation or message.tp not in owned:
                self.engine.stats["stale_generation"] += 1
                continue
            consumed.append(message.topic)
            try:
                decoded = await decode_holding(self.codec, message.value)
            except SerializationError as exc:
                assert self.producer is not None
                await dead_letter_message(self.producer, exc, message, group=self.app.conf.id)
                continue
            oldest = min(oldest, message.timestamp)
            self.engine.apply(
                decoded,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                now=now,
            )
        count_consumed(self.app.conf.id, consumed)
        self.processed += len(messages)
        self.batches += 1
        changes = self.engine.drain()
        self.persist(changes)
        await self.table.flush()
        if await self.publish(changes, now) and consumed:
            observe_trending_freshness([w.name for w in self.windows], [oldest])
        self.feed_pending |= changes.votes - changes.deleted

    def persist(self, changes: Changes) -> None:
        """Voters, then memes, then seen ids: the order recovery relies on (see state.py)."""
        memes = self.engine.memes
        for key in changes.voters:
            partition = memes[voter_meme(key)].partition
            self.table.put(partition, key, self.engine.voters[key].encode())
        for meme_id in changes.memes:
            state = memes[meme_id]
            self.table.put(state.partition, meme_key(meme_id), state.encode())
        for batch in changes.seen:
            self.table.put(batch.partition, batch.key, batch.encode())

    async def publish(self, changes: Changes, now: float) -> bool:
        """True when the sorted sets took the batch (False: Redis is down, the tick catches up)."""
        async with self.redis_lock:
            return await self._publish(changes, now)

    async def _publish(self, changes: Changes, now: float) -> bool:
        assert self.sets is not None
        scores: dict[str, dict[str, float]] = {key: {} for key in self.keys}
        for meme_id in changes.memes - changes.deleted:
            state = self.engine.memes.get(meme_id)
            if state is None:  # a rebalance dropped it while this batch awaited the producer
                continue
            for index, key in enumerate(self.keys):
                if state.buckets[index]:
                    scores[key][meme_id] = self.engine.score(state, index, now)
                    self.published[index].add(meme_id)
        self.pending_removals |= changes.deleted
        removed = list(self.pending_removals)
        try:
            await self.sets.update(scores, removed)
        except REDIS_ERRORS as exc:
            self._redis_down(exc)
            return False
        if removed:
            await self._remove_rising(removed)
        self.pending_removals.clear()
        return True

    async def _remove_rising(self, removed: list[str]) -> None:
        assert self.sets is not None
        await self.sets.remove([RISING_KEY], removed)
        for published in (*self.published, self.published_rising):
            published.difference_update(removed)

    def _redis_down(self, exc: BaseException) -> None:
        if time.monotonic() - self._redis_down_logged > 10:
            log.warning("trending: Redis unavailable, sets catch up at the next tick: %s", exc)
            self._redis_down_logged = time.monotonic()

    def feed_votes(self) -> None:
        """The vote counts that changed since the last call, the best-scored first, capped."""
        now = time.time()
        memes = self.engine.memes
        changed = [m for m in self.feed_pending if m in memes and not memes[m].deleted]
        self.feed_pending.clear()
        scored = [(self._score_now(memes[m], now), m) for m in changed]
        best = heapq.nlargest(FEED_VOTES_MAX, scored)
        self._send_feed(
            [
                FeedEvent(meme_id=m, kind=FeedKind.VOTES, votes=memes[m].net, score=score)
                for score, m in best
            ]
        )

    def _score_now(self, state: MemeState, now: float) -> float:
        spec = self.windows[0]
        score = self.engine.score(state, 0, now)
        return decayed_to(score, self.engine.landmarks[0], now, spec.half_life_s)

    def _send_feed(self, events: list[FeedEvent]) -> None:
        if not events or self.producer is None:
            return
        producer = self.producer

        async def send() -> None:
            results = await asyncio.gather(
                *(producer.send(MEME_FEED.name, e) for e in events), return_exceptions=True
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                log.warning("trending: %d feed events not sent: %s", len(failed), failed[0])

        task = asyncio.create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the tick -------------------------------------------------------------------------

    async def tick(self) -> None:
        if not self.ready or self.app.rebalancing or not self.active_partitions():
            return
        self.start()
        await self.ensure_loaded()
        assert self.sets is not None
        now = time.time()
        engine = self.engine
        landmarks = [w.landmark(now) for w in self.windows]
        engine.prune(now)
        partitions = self.active_partitions()
        await self._expire_seen()
        if time.monotonic() - self._swept > SWEEP_EVERY_S:
            self._swept = time.monotonic()
            await self.sweep(now)
        async with self.redis_lock:
            # The landmark moves under the lock: no batch writes new-landmark scores into a set
            # still holding old-landmark ones (the reconcile below swaps the whole set).
            moved = [new != old for new, old in zip(landmarks, engine.landmarks, strict=True)]
            engine.landmarks = landmarks
            await self._reconcile(moved, landmarks, partitions)
        if time.monotonic() - self._stats_logged > 60:
            self._stats_logged = time.monotonic()
            log.info("trending: %s", self.stats())

    async def _reconcile(
        self, moved: list[bool], landmarks: list[int], partitions: set[int]
    ) -> None:
        assert self.sets is not None
        engine = self.engine
        try:
            if self.pending_removals:
                removed = list(self.pending_removals)
                await self.sets.remove([*self.keys, RISING_KEY], removed)
                await self._remove_rising(removed)
                self.pending_removals.clear()
            top_n = self.settings.trending_top_n
            status = await self.sets.status([w.name for w in self.windows])
            now = time.time()
            for index, spec in enumerate(self.windows):
                size, warmed = status[index]
                replace = moved[index] or warmed
                gone = {m for m in self.published[index] if self._left(m, index)}
                expected = min(top_n, len(self.published[index] - gone))
                # Re-add our top N only when members of ours can be missing: a full set (trims),
                # a set smaller than our own share (Redis restarted, emptied), or a fresh start.
                top = {}
                if replace or self.resync or size >= top_n or size < expected:
                    top = dict(engine.top(index, top_n, now, partitions))
                await self.sets.reconcile(
                    self.keys[index],
                    top,
                    gone,
                    replace=replace,
                    decay=Decay(landmarks[index], spec.half_life_s),
                    window=spec.name,
                )
                self.published[index] = (self.published[index] - gone) | set(top)
                if index == 0:
                    self._announce(dict(engine.top(0, FEED_TOP, now, partitions)), now)
            self.resync = False
            self.ticks += 1
            if self.ticks % RISING_EVERY == 1:
                rising = dict(engine.top_rising(top_n, now, partitions))
                await self.sets.reconcile(
                    RISING_KEY, rising, self.published_rising - set(rising), replace=False
                )
                self.published_rising = set(rising)
        except REDIS_ERRORS as exc:
            self._redis_down(exc)

    def stats(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "batches": self.batches,
            "memes": len(self.engine.memes),
            "records": len(self.table),
            "recovered_records": self.table.recovered_records,
            "recovery_s": round(self.table.recovery_s, 3),
            "loaded": self.loaded,
            "seen_ids": len(self.engine.seen.ids),
            **self.engine.stats,
        }

    def _left(self, meme_id: str, index: int) -> bool:
        state = self.engine.memes.get(meme_id)
        return state is None or state.deleted or not state.buckets[index]

    def _announce(self, top: dict[str, float], now: float) -> None:
        best = sorted(top, key=lambda m: (top[m], m), reverse=True)[:FEED_TOP]
        entered = [m for m in best if m not in self.top_feed]
        self.top_feed = set(best)
        spec = self.windows[0]
        self._send_feed(
            [
                FeedEvent(
                    meme_id=m,
                    kind=FeedKind.TRENDING,
                    votes=self.engine.memes[m].net,
                    score=decayed_to(top[m], self.engine.landmarks[0], now, spec.half_life_s),
                )
                for m in entered
            ]
        )

    async def sweep(self, now: float) -> int:
        """Deletes the records of memes and votes older than the longest window (a vote that
        old scores nowhere, so a later change may count as a first vote); deleted memes stay,
        so late votes cannot bring them back."""
        horizon = now - max(w.length_s + w.bucket_s for w in self.windows)
        dropped = 0
        for meme_id, state in list(self.engine.memes.items()):
            newest = max(state.last_t.values(), default=0.0)
            if state.deleted or any(state.buckets) or newest > horizon:
                continue
            del self.engine.memes[meme_id]
            self.table.put(state.partition, meme_key(meme_id), None)
            dropped += 1
        for partition, key, data in list(self.table.items(VOTER)):
            voter = VoterState.decode(data)
            if voter.t < horizon:
                self.engine.voters.pop(key, None)
                self.table.put(partition, key, None)
                dropped += 1
        await self.table.flush()
        log.info("trending: swept %d records older than %.0f", dropped, horizon)
        return dropped

    async def _expire_seen(self) -> None:
        marks = [t for (topic, _), t in self.engine.watermarks.items() if "views" in topic]
        if not marks:
            return
        for batch in self.engine.seen.expire(min(marks) - self.settings.trending_grace_s):
            self.table.put(batch.partition, batch.key, None)
        await self.table.flush()


def register(app: faust.App, settings: Settings) -> None:
    # A killed worker's partitions move after 10 s instead of Faust's default 60 s.
    app.conf.broker_session_timeout = 10.0
    # Members learn of a rebalance (a KEDA scale move) from a heartbeat's answer: every 1 s
    # rather than Faust's 3 s, which stalled every partition for up to 3 s a move.
    app.conf.broker_heartbeat_interval = 1.0
    store = ChangelogStore(app, settings, "state", MEME_VOTES.partitions)
    worker = TrendingWorker(app, settings, store)
    topic = app.topic(*TRENDING.topics, key_serializer="raw", value_serializer="raw")
    fetched = batches.route(app, topic, limit=settings.trending_batch_max)

    @app.on_partitions_revoked.connect
    async def forget_state(*_: Any, **__: Any) -> None:
        async with worker.batch_lock:
            worker.forget()
            await app.producer.flush()

    @app.on_partitions_assigned.connect
    async def keep_state(*_: Any, **__: Any) -> None:
        store.assigned(worker.active_partitions(), app.consumer_generation_id)

    @app.task
    async def declare_changelog() -> None:
        await store.declare()

    @app.on_rebalance_complete.connect
    async def load_state(*_: Any, **__: Any) -> None:
        worker.recovered()

    @app.on_before_shutdown.connect
    def close_worker(*_: Any, **__: Any) -> None:
        worker.close()

    @app.agent(topic)
    async def trending(stream: faust.StreamT[bytes]) -> None:
        async for messages in fetched.of(stream, within=settings.trending_batch_within_s):
            await worker.process(messages)

    @app.page("/trending/stats/")
    async def trending_stats(web: Any, request: Any) -> Any:
        """Events processed and why some were not counted (late, duplicate, replayed...)."""
        return web.json(worker.stats())

    @app.timer(interval=FEED_INTERVAL_S)
    async def trending_feed() -> None:
        worker.feed_votes()

    @app.timer(interval=settings.trending_tick_s)
    async def trending_tick() -> None:
        await worker.tick()
