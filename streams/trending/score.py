"""The trending score, as pure functions (the worker and the tests' offline model agree on it).

Forward decay (Cormode et al., 2009) with a landmark L per window and half-life H:

    score_w(m) = sum over the current vote v_u of each user u on m, cast at t_u in the window:
                     v_u * 2 ** ((t_u - L) / H)
               + view_weight * sum over views of m at t_j in the window: 2 ** ((t_j - L) / H)

Only a user's latest vote counts (v in {-1, 0, +1}), so a changed vote moves the score both ways
and 0 withdraws it. Dividing by 2 ** ((now - L) / H) gives the score decayed to `now`; that
factor is the same for every meme, so the ranking never changes just because time passes and
the sorted set needs no periodic rescoring, only an update when a meme's events change it, when
one of its buckets leaves the window, or when the landmark moves (once per window length,
which keeps the exponent within a few units).

Rising: the meme's engagement (accepted votes plus weighted views, undecayed) in the last
`recent_s` against its own baseline rate over the rest of the hour, as a Poisson z-score:

    expected = baseline * recent_s / (3600 - recent_s)
    rising   = (recent - expected) / sqrt(expected + 1)
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def decay(t: float, landmark: float, half_life_s: float) -> float:
    """An event's forward-decay weight relative to a landmark (or a bucket start)."""
    return 2.0 ** ((t - landmark) / half_life_s)


def window_score(
    buckets: Iterable[tuple[int, float]], landmark: float, half_life_s: float
) -> float:
    """Sum of bucket sums, each kept relative to its bucket start, rebased to the landmark."""
    return sum(decay(start, landmark, half_life_s) * rel for start, rel in buckets)


def decayed_to(score: float, landmark: float, now: float, half_life_s: float) -> float:
    """A landmark-relative score as of `now` (what the API shows)."""
    return score * decay(landmark, now, half_life_s)


def rising(recent: float, baseline: float, recent_s: float, window_s: float) -> float:
    expected = baseline * recent_s / (window_s - recent_s)
    return (recent - expected) / math.sqrt(expected + 1.0)
