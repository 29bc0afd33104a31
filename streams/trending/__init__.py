"""Trending: votes and views -> windowed, time-decayed scores -> Redis sorted sets.

The windows are declared in domain/trending_windows.py; here are score.py (the formula),
state.py (table records), engine.py (the computation) and agents.py (the Faust wiring).
"""

from streams.trending.agents import register

__all__ = ["register"]
