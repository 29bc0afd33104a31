"""The chaos suite's API and render worker, on the session's PRIVATE stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memestream.testing.private_stack import PrivateStack, Proc


def _suffix(request: pytest.FixtureRequest) -> str:
    return request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")


@pytest.fixture(scope="module")
def chaos_api(private_stack: PrivateStack, request: pytest.FixtureRequest) -> Iterator[str]:
    url, proc = private_stack.api(f"api-chaos-{_suffix(request)}")
    yield url
    private_stack.kill(proc)


@pytest.fixture(scope="module")
def chaos_worker(private_stack: PrivateStack, request: pytest.FixtureRequest) -> Iterator[Proc]:
    _, proc = private_stack.worker(f"worker-chaos-{_suffix(request)}")
    yield proc
    private_stack.kill(proc)
