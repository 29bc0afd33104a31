"""The session's private stores as a fixture.

The stack itself is memestream/testing/private_stack.py: benchmarks start one too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memestream.testing.private_stack import PrivateStack, running_private_stack

__all__ = ["PrivateStack", "private_stack_fixture", "running_private_stack"]


@pytest.fixture(scope="session", name="private_stack")
def private_stack_fixture() -> Iterator[PrivateStack]:
    """Session-wide private stores (tests/conftest.py imports this fixture)."""
    with running_private_stack() as stack:
        yield stack
