"""Uploaded templates in the AI features: captions, auto_caption and text suggestions.

The API runs in-process against the real stores, and an inference worker subprocess on
subjects of this module with the tiny random models of `tests/ai_fixtures.py` (AI_MODEL_DIRS),
so the model paths run, not only the heuristics; quality is not judged, only shapes,
membership and the embedding cache. Captions carry the upload's boxes in the request; the
worker reads uploads for text suggestions from PostgreSQL itself
(sinks/postgres/upload_refresher.py).
"""

from __future__ import annotations

import io
import json
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from domain.ai import suggest
from domain.ai.suggest import TemplateSuggester, suggest_runner, template_document
from domain.settings import Settings
from domain.templates import Template, TemplateCatalog, TextBox
from memestream.testing.environment import environment
from memestream.testing.processes import inference_worker
from tests.ai_fixtures import CORPUS, TinyModels
from tests.data_helpers import register

BOXES = [
    {"x": 10, "y": 10, "width": 280, "height": 40},
    {"x": 10, "y": 100, "width": 280, "height": 40},
    {"x": 10, "y": 190, "width": 280, "height": 40},
]


@pytest.fixture(scope="module")
def client(
    stack_settings: Settings, tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    tiny = {"caption": tiny_models.gpt2, "suggest": tiny_models.bert}
    subject = f"memestream-test-{uuid.uuid4().hex[:8]}.inference"
    worker_env = environment(stack_settings) | {
        "INFERENCE_SUBJECT": subject,
        "AI_MODEL_SIZE": "small",
        "AI_MODEL_DIRS": json.dumps({f"{t}:small": str(p) for t, p in tiny.items()}),
        "AI_TIMEOUT_S": "30",
        "AI_CAPTION_TIMEOUT_S": "30",
        "AI_CAPTION_TOKENS_PER_BOX": "6",
        "AI_TORCH_THREADS": "1",
    }
    settings = stack_settings.model_copy(
        update={
            "inference_subject": subject,
            "inference_deadline_s": 30.0,
            "inference_caption_deadline_s": 30.0,
            "upload_tmp_dir": tmp_path_factory.mktemp("ai-uploads"),
        }
    )
    with inference_worker(worker_env), TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def user(client: TestClient) -> dict[str, Any]:
    account = register(client, "aiu")
    client.cookies.clear()
    return account


def upload(client: TestClient, user: dict[str, Any], name: str, tags: str) -> dict[str, Any]:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 240), (200, 80, 40)).save(buffer, "PNG")
    response = client.post(
        "/api/templates",
        headers=user["headers"],
        data={
            "name": name,
            "tags": tags,
            "description": "three panels that escalate",
            "boxes": json.dumps(BOXES),
        },
        files={"file": ("t.png", buffer.getvalue(), "image/png")},
    )
    assert response.status_code == 201, response.text
    return response.json()


def unique_words(count: int) -> str:
    """Words the tiny tokenizer knows, in an order no earlier run's upload shares: uploads of
    every run stay in the shared database, and near-identical names embed almost alike."""
    words = sorted({w for line in CORPUS for w in line.split()})
    return " ".join(random.Random(uuid.uuid4().int).sample(words, count))


def document(template: dict[str, Any]) -> str:
    """What the suggester embeds for a template (domain/ai/suggest.py)."""
    parts = [template["name"], ", ".join(template["tags"]), template["category"]]
    return ". ".join(p for p in [*parts, template["description"]] if p)


def test_caption_of_an_uploaded_template_has_one_text_per_box(
    client: TestClient, user: dict[str, Any]
) -> None:
    template = upload(client, user, f"Escalation {uuid.uuid4().hex[:6]}", "panels, escalate")
    response = client.post(
        "/api/meme/caption", json={"template_id": template["id"], "topic": "unit tests"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["template_id"] == template["id"]
    assert len(body["texts"]) == len(BOXES)
    assert all(isinstance(t, str) and t.strip() for t in body["texts"])
    assert body["source"] in {"gpt2-tiny", "heuristic"}
    unknown = client.post("/api/meme/caption", json={"template_id": "u-nobody", "topic": "x"})
    assert unknown.status_code == 422 and unknown.json()["type"].endswith("/unknown-template")


def test_auto_caption_fills_the_boxes_of_an_uploaded_template(
    client: TestClient, user: dict[str, Any]
) -> None:
    template = upload(client, user, f"Auto {uuid.uuid4().hex[:6]}", "auto")
    accepted = client.post(
        "/api/meme/generate",
        json={
            "template_id": template["id"],
            "texts": ["Mine stays"],
            "auto_caption": True,
            "topic": "deadlines",
        },
    )
    assert accepted.status_code == 202, accepted.text
    meme = client.get(accepted.json()["status_url"]).json()  # the pending row: the sent texts
    assert meme["texts"][0] == "Mine stays"
    assert len(meme["texts"]) == len(BOXES)
    assert all(t.strip() for t in meme["texts"])


def suggest_until_first(client: TestClient, template: dict[str, Any]) -> dict[str, Any]:
    """The suggestion for the template's own document, asked again until the worker's next
    upload refresh (at most every 5 s) has read it, or 15 s passed."""
    deadline = time.monotonic() + 15
    while True:
        response = client.post(
            "/api/templates/suggest", json={"text": document(template), "limit": 20}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        if body["templates"][0]["template_id"] == template["id"] or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def test_text_suggestions_rank_uploaded_templates(client: TestClient, user: dict[str, Any]) -> None:
    first = upload(client, user, unique_words(6), unique_words(2).replace(" ", ", "))
    body = suggest_until_first(client, first)
    assert body["source"] == "bert-tiny"  # the model ranked them, with the uploads' rows
    best = body["templates"][0]
    assert (best["template_id"], best["name"]) == (first["id"], first["name"])
    assert best["score"] == pytest.approx(1.0, abs=1e-3)
    # Later uploads join at the worker's next refresh (at most every 5 s).
    second = upload(client, user, unique_words(6), unique_words(2).replace(" ", ", "))
    again = suggest_until_first(client, second)
    assert again["templates"][0]["template_id"] == second["id"]


class CountingEmbedder:
    """Stands in for a loaded embedder: deterministic rows, and a record of what it embedded."""

    def __init__(self) -> None:
        self.embedded: list[str] = []
        self._cache: dict[object, Any] = {}

    def cached(self, key: object, compute: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += texts
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts]
        return np.stack([r / np.linalg.norm(r) for r in rows])


def _upload(template_id: str, name: str) -> Template:
    box = TextBox("top", 0, 0, 100, 20)
    return Template(template_id, name, [name.lower()], "uploads", 100, 100, [box])


def test_each_upload_is_embedded_once_and_the_oldest_leave_beyond_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(suggest, "MAX_UPLOADS", 2)
    catalog = TemplateCatalog.default()
    suggester = TemplateSuggester(manager=None, catalog=catalog)  # type: ignore[arg-type]
    model = CountingEmbedder()
    a, b, c = _upload("u-a", "Alpha"), _upload("u-b", "Bravo"), _upload("u-c", "Charlie")
    assert suggester.add_uploads([a, b]) == 2 and suggester.add_uploads([a]) == 0
    ranked = suggester.runner.run(model, [template_document(b)])[0]
    assert ranked[0] == ("u-b", pytest.approx(1.0))
    assert len(ranked) == len(catalog) + 2
    model.embedded.clear()
    suggester.add_uploads([c])  # over the cap: Alpha leaves
    ranked = suggester.runner.run(model, ["Charlie"])[0]
    assert model.embedded == [template_document(c), "Charlie"]  # only the new upload
    assert {tid for tid, _ in ranked} == {*catalog.ids(), "u-b", "u-c"}
    assert suggester.runner.heuristic("charlie")[0][0] == "u-c"  # the fallback sees them too
    # Without uploads the catalogue ranking is what it was.
    plain = suggest_runner(catalog).run(CountingEmbedder(), ["drake"])[0]
    assert {tid for tid, _ in plain} == set(catalog.ids())
