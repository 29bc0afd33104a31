"""The answers of the AI tasks: plain, typed values the API and the stream pass around."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Caption:
    """One text per box of the template, in box order."""

    texts: list[str]


SENTIMENT_LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True, slots=True)
class Sentiment:
    label: str  # one of SENTIMENT_LABELS
    score: float  # confidence in the label, 0..1


@dataclass(frozen=True, slots=True)
class Suggestion:
    template_id: str
    name: str
    score: float  # higher is closer; cosine similarity or hash similarity, 0..1


class Decision(StrEnum):
    OK = "ok"
    FLAGGED = "flagged"
    REJECTED = "rejected"


DECISION_RANK = {Decision.OK: 0, Decision.FLAGGED: 1, Decision.REJECTED: 2}


@dataclass(frozen=True, slots=True)
class Verdict:
    """A moderation outcome: the decision, the score behind it and a human-readable reason."""

    decision: Decision
    score: float
    label: str  # what was found: "clean", "nsfw", "toxic", "blocklist", ...
    reason: str | None = None
    source: str = "heuristic"  # the model's name, or "heuristic"

    def worse(self, other: Verdict) -> Verdict:
        """The more severe of two verdicts (ties: the higher score)."""
        mine, theirs = DECISION_RANK[self.decision], DECISION_RANK[other.decision]
        if mine != theirs:
            return self if mine > theirs else other
        return self if self.score >= other.score else other
