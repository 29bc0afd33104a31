"""Caption search through the API (`GET /api/search/memes`), on the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from domain.settings import Settings
from memestream.testing.memes import insert_meme


@pytest.fixture(scope="module")
def client(stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stack_settings)) as client:
        yield client


def _search(client: TestClient, **params: str) -> list[dict]:  # type: ignore[type-arg]
    response = client.get("/api/search/memes", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_caption_search_finds_a_meme_by_a_word_of_its_caption(
    client: TestClient, stack_settings: Settings
) -> None:
    word = f"zq{uuid.uuid4().hex[:12]}"  # in no other caption, this run's or earlier ones'
    drake = insert_meme(stack_settings, texts=[f"when the {word} compiles", "first try"])
    classic = insert_meme(
        stack_settings, texts=[f"{word.upper()} again"], template_id="classic"
    )  # 'simple' config: case-folded, not stemmed
    for status in ("pending", "flagged", "failed", "deleted"):  # only rendered memes are public
        insert_meme(stack_settings, status=status, texts=[word])
    insert_meme(stack_settings, texts=["a caption without it"])

    found = _search(client, q=word)
    assert {m["id"] for m in found} == {drake, classic}
    by_id = {m["id"]: m for m in found}
    assert by_id[drake]["texts"] == [f"when the {word} compiles", "first try"]
    assert by_id[drake]["status"] == "rendered" and by_id[drake]["template_id"] == "drake"

    assert [m["id"] for m in _search(client, q=word, template_id="classic")] == [classic]
    # Web-search syntax: an excluded word, a quoted phrase.
    assert [m["id"] for m in _search(client, q=f"{word} -compiles")] == [classic]
    assert [m["id"] for m in _search(client, q=f'"{word} compiles"')] == [drake]
    assert _search(client, q=f"{word}x") == []
