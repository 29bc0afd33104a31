"""Rule-based answers: the last link of every fallback chain, and always available.

They are deliberately simple and predictable: captions from phrase patterns, sentiment from
a small lexicon, template suggestion from keyword overlap, text moderation from a blocklist
of phrases, image moderation from the share of skin-coloured pixels (which can flag an image
for review but never reject it alone: it cannot tell a beach photo from porn), and a
difference hash for matching an upload to template images.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image

from domain.ai.types import Caption, Sentiment

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


# --- captions --------------------------------------------------------------------------------
_PATTERNS: dict[int, tuple[tuple[str, ...], ...]] = {
    1: (("{topic}, but make it a meme",), ("Me explaining {topic} to everyone",)),
    2: (
        ("Nobody:", "Me: {topic}"),
        ("When someone says {topic}", "is overrated"),
        ("Ignoring {topic}", "Embracing {topic}"),
        ("{topic}", "{topic} everywhere"),
    ),
}


def caption(topic: str, boxes: int) -> Caption:
    """One text per box; the pattern is picked by a stable hash of the topic."""
    topic = " ".join(topic.split())[:80] or "this"
    boxes = max(1, boxes)
    if boxes in _PATTERNS:
        options = _PATTERNS[boxes]
        pattern = options[zlib.crc32(topic.encode()) % len(options)]
        return Caption([p.format(topic=topic) for p in pattern])
    steps = ["Thinking about {topic}", "Talking about {topic}", "Memeing {topic}"]
    texts = [steps[min(i, len(steps) - 1)].format(topic=topic) for i in range(boxes - 1)]
    return Caption([*texts, f"Becoming {topic}"])


# --- sentiment -------------------------------------------------------------------------------
_POSITIVE = frozenset(
    {
        "love",
        "loved",
        "loving",
        "like",
        "great",
        "good",
        "best",
        "awesome",
        "amazing",
        "happy",
        "win",
        "winning",
        "wins",
        "won",
        "fun",
        "funny",
        "nice",
        "cool",
        "glad",
        "enjoy",
        "beautiful",
        "perfect",
        "excellent",
        "yay",
        "finally",
        "proud",
        "wholesome",
        "lol",
        "haha",
        "friday",
        "weekend",
        "success",
        "shipped",
        "works",
        "working",
    }
)
_NEGATIVE = frozenset(
    {
        "hate",
        "hated",
        "bad",
        "worst",
        "awful",
        "terrible",
        "sad",
        "angry",
        "fail",
        "failed",
        "failing",
        "broke",
        "broken",
        "bug",
        "bugs",
        "cry",
        "crying",
        "pain",
        "tired",
        "sick",
        "boring",
        "ugly",
        "lose",
        "losing",
        "lost",
        "monday",
        "deadline",
        "error",
        "errors",
        "crash",
        "crashed",
        "wrong",
        "annoying",
        "stress",
        "stressed",
        "nobody",
        "why",
    }
)
_NEGATIONS = frozenset({"not", "no", "never", "don't", "isn't", "can't", "won't", "nothing"})


def sentiment(text: str) -> Sentiment:
    """Counts lexicon words (a negation flips the next one); ties are neutral."""
    score, flip = 0, False
    for word in words(text):
        if word in _NEGATIONS:
            flip = True
            continue
        value = (word in _POSITIVE) - (word in _NEGATIVE)
        score += -value if flip else value
        flip = False
    if score == 0:
        return Sentiment("neutral", 0.5)
    confidence = min(0.9, 0.5 + 0.1 * abs(score))
    return Sentiment("positive" if score > 0 else "negative", confidence)


# --- template suggestion --------------------------------------------------------------------
def keyword_scores(query: str, documents: Sequence[str]) -> list[float]:
    """Share of the query's words found in each document (0..1)."""
    wanted = set(words(query))
    if not wanted:
        return [0.0 for _ in documents]
    return [len(wanted & set(words(doc))) / len(wanted) for doc in documents]


# --- text moderation -------------------------------------------------------------------------
# (phrase, score, label): a phrase matches on word boundaries, case-insensitively. Threats and
# incitement to self-harm reject; sexual content is flagged; profanity alone passes.
BLOCKLIST: tuple[tuple[str, float, str], ...] = (
    ("kill yourself", 1.0, "self-harm incitement"),
    ("kys", 1.0, "self-harm incitement"),
    ("i will kill you", 1.0, "threat"),
    ("i'm going to kill you", 1.0, "threat"),
    ("shoot up the school", 1.0, "threat"),
    ("stab you", 0.95, "threat"),
    ("bomb threat", 0.95, "threat"),
    ("gas the", 1.0, "hate"),
    ("child porn", 1.0, "sexual content involving minors"),
    ("rape", 0.95, "sexual violence"),
    ("porn", 0.7, "sexual content"),
    ("nude", 0.7, "sexual content"),
    ("nudes", 0.7, "sexual content"),
    ("nsfw", 0.65, "sexual content"),
    ("fuck", 0.3, "profanity"),
    ("shit", 0.2, "profanity"),
)
_BLOCK_PATTERNS = tuple(
    (re.compile(rf"(?<![a-z0-9]){re.escape(p)}(?![a-z0-9])", re.IGNORECASE), s, label)
    for p, s, label in BLOCKLIST
)


def blocklist(text: str) -> tuple[float, str | None]:
    """The highest-scoring phrase found: (score, label), or (0.0, None)."""
    best: tuple[float, str | None] = (0.0, None)
    for pattern, score, label in _BLOCK_PATTERNS:
        if score > best[0] and pattern.search(text):
            best = (score, label)
    return best


# --- image moderation ------------------------------------------------------------------------
SKIN_SCORE_CAP = 0.5


def skin_score(image: Image.Image) -> float:
    """Share of skin-coloured pixels (YCbCr box rule), capped so it can only flag."""
    small = image.convert("YCbCr").resize((64, 64))
    pixels = np.asarray(small, dtype=np.int16)
    cb, cr = pixels[..., 1], pixels[..., 2]
    skin = (cb >= 77) & (cb <= 127) & (cr >= 133) & (cr <= 173)
    return float(min(SKIN_SCORE_CAP, skin.mean()))


# --- perceptual hash -------------------------------------------------------------------------
def dhash(image: Image.Image, size: int = 8) -> int:
    """Difference hash: 64 bits of 'is this pixel brighter than its right neighbour'."""
    gray = np.asarray(image.convert("L").resize((size + 1, size)), dtype=np.int16)
    bits = (gray[:, 1:] > gray[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hash_similarity(a: int, b: int, bits: int = 64) -> float:
    return 1.0 - (a ^ b).bit_count() / bits


def top(scores: Iterable[tuple[str, float]], limit: int) -> list[tuple[str, float]]:
    return sorted(scores, key=lambda pair: (-pair[1], pair[0]))[:limit]
