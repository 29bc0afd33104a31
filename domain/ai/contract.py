"""The inference role's request/reply contract: subjects, messages and their encoding.

Both sides import it and nothing else of each other: the API's client (api/inference.py) and
the `inference` worker (streams/inference.py). A request is published to
`<INFERENCE_SUBJECT>.<task>` with a reply inbox (NATS request-reply); the workers subscribe in
one queue group (`QUEUE_GROUP`), so each request reaches exactly one replica. Bodies are orjson
objects of the dataclasses below.

Every request carries `deadline`: an absolute `time.time()` (seconds since the epoch) after
which the caller no longer waits (it has answered with the heuristic). Absolute rather than a
duration so time spent in NATS and in the worker's queue counts against it; the hosts' clocks
are NTP-synchronised, and a skew only moves the moment the worker gives up. A worker drops a
request it finds past its deadline, without running it and without replying.

A reply is `Reply` (the task's value as JSON, its source, the model size, whether a fallback
answered) or `{"error": "..."}` for a request the worker could not read.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import orjson

from domain.ai.types import Caption, Decision, Sentiment, Suggestion, Verdict

#: Every worker replica subscribes in this queue group: NATS hands each request to one member.
QUEUE_GROUP = "memestream-inference"


class Job(StrEnum):
    CAPTION = "caption"
    SUGGEST = "suggest"
    MODERATE_TEXT = "moderate_text"
    SENTIMENT = "sentiment"


def subject(prefix: str, job: Job) -> str:
    return f"{prefix}.{job.value}"


class BadMessage(ValueError):
    """A body that is not the message it claims to be."""


@dataclass(frozen=True, slots=True)
class CaptionJob:
    """What the caption model needs of a template, catalogue or uploaded: the API looked the
    template up, so the worker reads no database for a caption."""

    deadline: float
    topic: str
    template_id: str
    name: str
    description: str
    boxes: int


@dataclass(frozen=True, slots=True)
class SuggestJob:
    deadline: float
    text: str
    limit: int


@dataclass(frozen=True, slots=True)
class TextJob:
    """Text moderation or sentiment of a meme's texts (its boxes, in order)."""

    deadline: float
    texts: list[str]


@dataclass(frozen=True, slots=True)
class Reply:
    value: Any  # the task's answer as JSON (see the *_value / from_* helpers)
    source: str  # the model's name, or "heuristic"
    size: str | None
    fallback: bool


JobMessage = CaptionJob | SuggestJob | TextJob
JOB_TYPES: dict[Job, type[JobMessage]] = {
    Job.CAPTION: CaptionJob,
    Job.SUGGEST: SuggestJob,
    Job.MODERATE_TEXT: TextJob,
    Job.SENTIMENT: TextJob,
}
T = TypeVar("T")


def deadline_in(seconds: float) -> float:
    return time.time() + seconds


def remaining(deadline: float) -> float:
    """Seconds left before `deadline` (negative once it passed)."""
    return deadline - time.time()


def encode(message: Any) -> bytes:
    return orjson.dumps(message)


def decode(kind: type[T], data: bytes) -> T:
    """`data` as a `kind` dataclass; BadMessage when it is not one."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BadMessage("not a JSON object")
    if "error" in raw and kind is Reply:
        raise BadMessage(f"the worker refused the request: {raw['error']}")
    names = [f.name for f in dataclasses.fields(kind)]  # type: ignore[arg-type]
    missing = [n for n in names if n not in raw]
    if missing:
        raise BadMessage(f"{kind.__name__} lacks {', '.join(missing)}")
    message = kind(**{n: raw[n] for n in names})
    if hasattr(message, "deadline") and not isinstance(message.deadline, int | float):
        raise BadMessage("deadline is not a number")
    return message


def error(message: str) -> bytes:
    return encode({"error": message})


# --- task values ---------------------------------------------------------------------------
def caption_value(caption: Caption) -> list[str]:
    return caption.texts


def caption_from(value: Any, boxes: int) -> Caption:
    if not isinstance(value, list) or len(value) != boxes:
        raise BadMessage(f"a caption of {boxes} boxes must be {boxes} texts")
    return Caption([str(t) for t in value])


def suggestions_value(suggestions: list[Suggestion]) -> list[list[Any]]:
    return [[s.template_id, s.name, s.score] for s in suggestions]


def suggestions_from(value: Any) -> list[Suggestion]:
    try:
        return [Suggestion(str(tid), str(name), float(score)) for tid, name, score in value]
    except (TypeError, ValueError) as exc:
        raise BadMessage(f"not a list of suggestions: {exc}") from exc


def verdict_value(verdict: Verdict) -> dict[str, Any]:
    return dataclasses.asdict(verdict)


def verdict_from(value: Any) -> Verdict:
    try:
        return Verdict(**{**value, "decision": Decision(value["decision"])})
    except (TypeError, ValueError, KeyError) as exc:
        raise BadMessage(f"not a verdict: {exc}") from exc


def sentiment_value(sentiment: Sentiment) -> dict[str, Any]:
    return {"label": sentiment.label, "score": sentiment.score}


def sentiment_from(value: Any) -> Sentiment:
    try:
        return Sentiment(str(value["label"]), float(value["score"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise BadMessage(f"not a sentiment: {exc}") from exc
