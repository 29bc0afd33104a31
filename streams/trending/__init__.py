"""Trending: votes and views -> windowed, time-decayed scores -> Redis sorted sets.

windows.py (the 1h/24h/7d specs), score.py (the formula), state.py (table records), engine.py
(the computation), agents.py (the Faust wiring).
"""

from streams.trending.agents import register

__all__ = ["register"]
