"""Votes sent over the WebSocket become `Vote` events on `meme.votes`, acknowledged only
once Kafka has them (the same promise as the REST API's 202).

The client picks the vote's `event_id` (a UUID) and reuses it when it resends a vote queued
offline, so a vote delivered twice is one vote downstream (every sink dedupes on event_id).
"""

from __future__ import annotations

import re
import uuid

from domain.events import Vote
from domain.ids import is_valid_id, new_id
from producers.producer import EventProducer
from producers.topics import MEME_VOTES

USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class VoteRejected(ValueError):
    """A vote we will not send: say why in the ack."""


def build_vote(meme_id: object, user_id: object, value: object, vote_id: object) -> Vote:
    if not isinstance(meme_id, str) or not is_valid_id(meme_id):
        raise VoteRejected("meme_id must be a meme id")
    if not isinstance(user_id, str) or not USER_ID.match(user_id):
        raise VoteRejected("say who votes first: send a hello with a user_id")
    if value not in (-1, 0, 1) or isinstance(value, bool):
        raise VoteRejected("value is 1 (up), -1 (down) or 0 (withdrawn)")
    if vote_id is None:
        event_id = new_id()
    elif isinstance(vote_id, str) and is_valid_id(vote_id):
        event_id = str(uuid.UUID(vote_id))
    else:
        raise VoteRejected("vote_id must be a UUID")
    return Vote(meme_id=meme_id, user_id=user_id, value=int(value), event_id=event_id)  # type: ignore[arg-type]


class VoteSender:
    def __init__(self, producer: EventProducer, topic: str = MEME_VOTES.name) -> None:
        self.producer = producer
        self.topic = topic

    async def cast(self, vote: Vote) -> None:
        """Raises ProducerUnavailable when Kafka did not acknowledge."""
        await self.producer.send(self.topic, vote)
