"""The live feed: `meme.feed` from Kafka (directly or through NATS) fanned out to SSE and
WebSocket clients, with bounded history for resume, presence and shared drafts.

Pieces, one concept each: `cursor` (event ids), `messages` (routing and encoding), `history`
(bounded resume buffer), `mailbox` (per-client bounded queue), `hub` (channels and fan-out),
`kafka_transport` / `nats_transport` (how events reach this replica), `rooms` (cross-replica
ephemeral messages over Redis pub/sub), `presence`, `drafts`, `relay` (wires it all).
Votes sent over the socket take the API's one vote path (api/votes.py).
"""

from api.feed.relay import FeedRelay

__all__ = ["FeedRelay"]
