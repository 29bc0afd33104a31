"""The event types that flow through Kafka, one dataclass per Avro schema in `schemas/`.

A dataclass's name is its schema's name; its fields are the schema's fields, so the
codec in `producers.serialization` maps one to the other without per-type code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar

from domain.ids import derived_id, id_time, is_valid_id, new_id


def utcnow() -> datetime:
    """Now, to the millisecond: Avro's timestamp-millis, so events round-trip exactly."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class RenderStatus(StrEnum):
    RENDERED = "rendered"
    FAILED = "failed"


#: Moderation's verdicts that keep a meme out of public places (the `new` channel, trending);
#: its owner and whoever opens the meme itself still see it.
HELD_BACK = frozenset({"flagged", "rejected"})
FLAGGED = "flagged"
#: An admin's review (api/routes/review.py) produces a MemeRendered for its decision, on the
#: meme's own partition of `meme.rendered` (so it follows the flag in order): approved is
#: `rendered` + moderation APPROVED (public again), rejected is `failed` + moderation `rejected`.
#: Its moderation_label is REVIEW_LABEL, which no model uses, so readers can tell it from a render.
APPROVED = "approved"
REVIEW_LABEL = "review"


class FeedKind(StrEnum):
    REQUESTED = "requested"
    RENDERED = "rendered"
    FAILED = "failed"
    VOTES = "votes"
    TRENDING = "trending"
    DELETED = "deleted"


@dataclass(slots=True, kw_only=True)
class Event:
    schema_name: ClassVar[str]
    meme_id: str
    event_id: str = field(default_factory=new_id)
    occurred_at: datetime = field(default_factory=utcnow)

    @property
    def key(self) -> bytes:
        """Every topic is keyed by meme id, so one meme's events stay in order."""
        return self.meme_id.encode()


@dataclass(slots=True, kw_only=True)
class BoxPlacement:
    """Where a client put one of the template's text boxes, in the template's pixels."""

    x: int
    y: int
    width: int
    height: int


@dataclass(slots=True, kw_only=True)
class MemeRequested(Event):
    schema_name: ClassVar[str] = "MemeRequested"
    template_id: str
    texts: list[str]
    format: str | None = None
    quality: str | None = None
    user_id: str | None = None
    request_id: str | None = None
    #: v2: the editor's layout. Filters applied to the template before the text (rotate,
    #: crop, colour), where each box went (template pixels, after `transform`; None keeps the
    #: template's layout) and filters applied to the finished meme.
    transform: list[str] = field(default_factory=list)
    boxes: list[BoxPlacement] | None = None
    filters: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """Rejects what no store can hold, so a forged event cannot wedge a partition.

        Everything else (unknown template, absurd texts, bad options) is the renderer's to
        refuse, as a `failed` meme whose reason the client can read.
        """
        try:
            id_time(self.meme_id)
        except ValueError as exc:
            raise InvalidEvent(f"meme_id {self.meme_id[:64]!r} is not a UUIDv7") from exc
        if not is_valid_id(self.event_id):
            raise InvalidEvent(f"event_id {self.event_id[:64]!r} is not a UUID")
        if any("\x00" in text for text in self.texts):
            raise InvalidEvent("a text contains NUL, which PostgreSQL cannot store")


class InvalidEvent(ValueError):
    """A decodable event whose content is impossible: it goes to the DLQ with this reason."""


@dataclass(slots=True, kw_only=True)
class ImageVariant:
    size: str
    key: str
    width: int
    height: int
    bytes: int
    media_type: str


@dataclass(slots=True, kw_only=True)
class MemeRendered(Event):
    schema_name: ClassVar[str] = "MemeRendered"
    template_id: str
    status: RenderStatus
    variants: list[ImageVariant]
    render_ms: float
    requested_at: datetime
    error: str | None = None
    user_id: str | None = None
    # v2 (domain/ai): moderation's verdict and the caption's sentiment; None when not run.
    # A rejected meme is status FAILED + moderation "rejected", so v1 readers see a failure.
    moderation: str | None = None  # ok, flagged, rejected; approved after a review
    moderation_label: str | None = None
    moderation_score: float | None = None
    moderation_reason: str | None = None
    sentiment: str | None = None  # negative, neutral, positive
    sentiment_score: float | None = None

    @property
    def meme_status(self) -> str:
        """The status stored for the meme: moderation's rejected / flagged win over the render."""
        if self.moderation in HELD_BACK:
            return self.moderation
        return self.status.value

    @property
    def public(self) -> bool:
        """Rendered and not held back by moderation: what may trend."""
        return self.status is RenderStatus.RENDERED and self.moderation not in HELD_BACK

    @property
    def reviewed(self) -> bool:
        """An admin's decision on a flagged meme, not a render (the render came earlier)."""
        return self.moderation_label == REVIEW_LABEL

    @classmethod
    def for_request(cls, request: MemeRequested, **fields: object) -> MemeRendered:
        """The outcome of a request: its id derives from the request's, so replays dedupe."""
        return cls(
            event_id=derived_id(request.event_id, "rendered"),
            meme_id=request.meme_id,
            template_id=request.template_id,
            requested_at=request.occurred_at,
            user_id=request.user_id,
            **fields,  # type: ignore[arg-type]
        )


@dataclass(slots=True, kw_only=True)
class Vote(Event):
    schema_name: ClassVar[str] = "Vote"
    user_id: str
    value: int


@dataclass(slots=True, kw_only=True)
class View(Event):
    schema_name: ClassVar[str] = "View"
    user_id: str | None = None


@dataclass(slots=True, kw_only=True)
class MemeDeleted(Event):
    schema_name: ClassVar[str] = "MemeDeleted"
    deleted_by: str | None = None


@dataclass(slots=True, kw_only=True)
class FeedEvent(Event):
    schema_name: ClassVar[str] = "FeedEvent"
    kind: FeedKind
    template_id: str | None = None
    status: str | None = None
    score: float | None = None
    votes: int | None = None
    user_id: str | None = None

    @classmethod
    def for_render(cls, rendered: MemeRendered) -> FeedEvent:
        """A render's outcome, or an admin's review decision, as the feed shows it.

        The render worker and the review route both send it, so it is built here once. Its
        `status` is the stored one (moderation's flagged / rejected win): the relay puts a
        rendered public meme on the `new` channel and a held-back one only on its owner's
        (api/feed/access.py). Same event id as the MemeRendered, so a replay dedupes.
        """
        rendered_ok = rendered.status is RenderStatus.RENDERED
        return cls(
            event_id=rendered.event_id,
            meme_id=rendered.meme_id,
            kind=FeedKind.RENDERED if rendered_ok else FeedKind.FAILED,
            template_id=rendered.template_id,
            status=rendered.meme_status,
            user_id=rendered.user_id,
        )


EVENT_TYPES: dict[str, type[Event]] = {
    cls.schema_name: cls
    for cls in (MemeRequested, MemeRendered, Vote, View, MemeDeleted, FeedEvent)
}
