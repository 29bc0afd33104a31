"""Replays trace actions straight into Kafka with the platform's own EventProducer.

This skips the API (its validation, auth and rate limits) to load the consumers alone:
generate and batch become `MemeRequested`, votes `Vote`, views `View`. Reads, uploads and
feed connections have no Kafka equivalent and are skipped with that reason.
"""

from __future__ import annotations

import asyncio

from domain.events import MemeRequested, View, Vote
from domain.ids import new_id
from domain.settings import Settings
from loadgen.stats import Outcome
from loadgen.trace import TraceRecord
from producers.producer import EventProducer, ProducerUnavailable
from producers.topics import MEME_REQUESTS, MEME_VIEWS, MEME_VOTES


class KafkaTarget:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: EventProducer | None = None

    async def setup(self) -> None:
        self.producer = EventProducer(self.settings, client_id="memestream-loadgen")
        await asyncio.to_thread(self.producer.connect)

    async def close(self) -> None:
        if self.producer is not None:
            await asyncio.to_thread(self.producer.close)

    async def execute(self, record: TraceRecord, meme_id: str | None) -> Outcome:
        assert self.producer is not None, "setup() first"
        payload = record.payload
        try:
            match record.action:
                case "generate":
                    return await self._request(payload, record)
                case "batch":
                    outcomes = await asyncio.gather(
                        *(self._request(item, record) for item in payload["items"])
                    )
                    created = tuple(i for o in outcomes for i in o.created)
                    return Outcome(created=created)
                case "vote" if meme_id:
                    vote = Vote(meme_id=meme_id, user_id=record.user, value=payload["value"])
                    await self.producer.send(MEME_VOTES.name, vote)
                    return Outcome()
                case "view" if meme_id:
                    view = View(meme_id=meme_id, user_id=record.user)
                    await self.producer.send(MEME_VIEWS.name, view)
                    return Outcome()
                case _:
                    return Outcome(skipped="no Kafka equivalent")
        except ProducerUnavailable as exc:
            return Outcome(error=f"ProducerUnavailable: {exc}")

    async def _request(self, payload: dict, record: TraceRecord) -> Outcome:
        assert self.producer is not None
        event = MemeRequested(
            meme_id=new_id(),
            template_id=payload["template_id"],
            texts=list(payload["texts"]),
            user_id=record.user,
            request_id=f"loadgen-{record.seq}",
        )
        await self.producer.send(MEME_REQUESTS.name, event)
        return Outcome(created=(event.meme_id,))
