"""Helpers of the HA tests: a free block of ports, and starting one part of the stack."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

from loadgen.private_platform import bindable
from memestream.stack.ha import HaPorts, HaStack


def free_ports() -> HaPorts:
    """A base whose every port is free, below the ephemeral range."""
    rng = random.Random()
    for _ in range(200):
        ports = HaPorts(rng.randrange(20_000, 31_900, 100))
        if all(bindable(port) for port in ports.all()):
            return ports
    raise RuntimeError("no free block of ports for the HA stack")


@contextmanager
def started(stack: HaStack, names: list[str]) -> Iterator[HaStack]:
    """Start `names` for one module's fixture, stop them after it."""
    try:
        stack.start(names)
        yield stack
    finally:
        stack.stop(names)
