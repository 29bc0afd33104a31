"""The AI endpoints through the real API process: caption and template suggestions.

The models run in an inference worker (a subprocess, `python -m streams worker --role
inference`, with whatever models are installed: the packaged ones in CI), reached over NATS;
the API process loads none. Whether a model or the heuristic answered, the shapes and rules
checked here hold. When no worker answers (none listening, NATS down) the API answers with the
heuristic at once instead of an error.
"""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from api.app import create_app
from domain.ai.backends import ai_available
from domain.ai.manager import ModelManager
from domain.ai.service import AIService
from domain.settings import Settings
from domain.templates import TemplateCatalog
from memestream.testing.processes import metric_value

pytestmark = [pytest.mark.services, pytest.mark.usefixtures("inference_worker")]
CAPTION_TIMEOUT = 90.0  # the first caption may wait for the model to load on a busy machine
MODEL_LIBRARIES = ("torch", "onnxruntime", "transformers", "tokenizers")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("template_id", ["drake", "expanding-brain"])
def test_caption_gives_one_text_per_box(api_url: str, template_id: str) -> None:
    boxes = len(TemplateCatalog.default().get(template_id).boxes)
    response = httpx.post(
        f"{api_url}/api/meme/caption",
        json={"template_id": template_id, "topic": "unit tests"},
        timeout=CAPTION_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["template_id"] == template_id
    assert len(body["texts"]) == boxes
    assert all(isinstance(t, str) and t.strip() for t in body["texts"])
    assert isinstance(body["source"], str) and isinstance(body["fallback"], bool)


def test_caption_of_an_unknown_template_is_422(api_url: str) -> None:
    response = httpx.post(
        f"{api_url}/api/meme/caption", json={"template_id": "no-such", "topic": "x"}
    )
    assert response.status_code == 422
    assert response.json()["type"].endswith("/unknown-template")


def test_caption_needs_a_topic(api_url: str) -> None:
    response = httpx.post(f"{api_url}/api/meme/caption", json={"template_id": "drake"})
    assert response.status_code == 422


def test_suggest_from_text_ranks_templates(api_url: str) -> None:
    catalog = TemplateCatalog.default()
    response = httpx.post(
        f"{api_url}/api/templates/suggest",
        json={"text": "late night thoughts at 3am", "limit": 3},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["by"] == "text"
    templates = body["templates"]
    assert len(templates) == 3
    # Uploads rank with the catalogue (other tests upload into the shared database).
    for t in templates:
        if t["template_id"] not in catalog:
            found = httpx.get(f"{api_url}/api/templates/{t['template_id']}")
            assert found.status_code == 200, t
    scores = [t["score"] for t in templates]
    assert scores == sorted(scores, reverse=True)
    assert templates[0]["template_id"] == "night-thoughts"  # model and heuristic agree here


def test_suggest_from_a_form_text(api_url: str) -> None:
    response = httpx.post(
        f"{api_url}/api/templates/suggest",
        data={"text": "two buttons choice", "limit": "2"},
        files={"unused": ("x.txt", b"", "text/plain")},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["templates"]) == 2


def test_suggest_from_an_uploaded_image_finds_its_template(api_url: str) -> None:
    upload = TemplateCatalog.default().get("drake").image().resize((240, 240))
    response = httpx.post(
        f"{api_url}/api/templates/suggest",
        files={"image": ("drake.png", _png(upload), "image/png")},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["by"] == "image" and body["source"] == "image_hash"
    assert body["templates"][0]["template_id"] == "drake"
    assert 0.0 <= body["templates"][-1]["score"] <= body["templates"][0]["score"] <= 1.0


@pytest.mark.parametrize(("fmt", "media_type"), [("GIF", "image/gif"), ("WEBP", "image/webp")])
def test_suggest_from_an_animation_matches_its_first_frame(
    api_url: str, fmt: str, media_type: str
) -> None:
    """An animated upload is matched by its first frame, not refused for its frame count."""
    first = TemplateCatalog.default().get("drake").image().resize((240, 240))
    later = [ImageOps.invert(first), first.rotate(90), ImageOps.mirror(first)]
    buffer = io.BytesIO()
    first.save(buffer, fmt, save_all=True, append_images=later, duration=80, loop=0)
    with Image.open(io.BytesIO(buffer.getvalue())) as sent:
        assert sent.n_frames == 4
    response = httpx.post(
        f"{api_url}/api/templates/suggest",
        files={"image": (f"drake.{fmt.lower()}", buffer.getvalue(), media_type)},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["by"] == "image" and body["templates"][0]["template_id"] == "drake"


def test_suggest_rejects_bad_uploads_and_empty_requests(api_url: str) -> None:
    url = f"{api_url}/api/templates/suggest"
    not_image = httpx.post(url, files={"image": ("x.png", b"plain text", "image/png")})
    assert not_image.status_code == 415
    truncated = _png(Image.new("RGB", (64, 64), "red"))[:60]
    corrupt = httpx.post(url, files={"image": ("x.png", truncated, "image/png")})
    assert corrupt.status_code == 422
    empty = httpx.post(url, data={"text": ""}, files={"unused": ("x", b"", "text/plain")})
    assert empty.status_code == 422
    no_text = httpx.post(url, json={"limit": 3})
    assert no_text.status_code == 422
    bad_limit = httpx.post(url, json={"text": "x", "limit": 500})
    assert bad_limit.status_code == 422


def test_captions_and_suggestions_are_answered_by_the_inference_worker(
    api_url: str, inference_worker: str
) -> None:
    counter = "memestream_inference_requests_total"
    before = {
        task: metric_value(inference_worker, counter, task=task, outcome="answered")
        for task in ("caption", "suggest")
    }
    caption = httpx.post(
        f"{api_url}/api/meme/caption",
        json={"template_id": "drake", "topic": "deadlines"},
        timeout=CAPTION_TIMEOUT,
    )
    suggestion = httpx.post(
        f"{api_url}/api/templates/suggest", json={"text": "deadlines"}, timeout=60
    )
    assert caption.status_code == 200 and suggestion.status_code == 200
    for task, count in before.items():
        after = metric_value(inference_worker, counter, task=task, outcome="answered")
        assert after == count + 1, task


def _mapped_model_libraries(pid: int) -> set[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {lib for lib in MODEL_LIBRARIES if f"/{lib}/" in maps or f"lib{lib}" in maps}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_the_api_process_loads_no_model(
    api_process: tuple[str, int], inference_worker: str
) -> None:
    """After captions and suggestions, no model library is mapped into the API process and its
    memory stayed flat; the worker, when the ai extra is installed, is where they are."""
    url, pid = api_process
    with httpx.Client(base_url=url, timeout=CAPTION_TIMEOUT) as client:
        client.post("/api/meme/caption", json={"template_id": "drake", "topic": "warm"})
        rss = _rss_mb(pid)
        for topic in ("coffee", "mondays", "tests", "deadlines", "cats"):
            assert client.post(
                "/api/meme/caption", json={"template_id": "expanding-brain", "topic": topic}
            ).is_success
            assert client.post("/api/templates/suggest", json={"text": topic}).is_success
    assert _mapped_model_libraries(pid) == set()
    assert _rss_mb(pid) - rss < 50, "the API's memory grew with AI requests"
    worker_pid = int(httpx.get(f"{inference_worker}/health").json()["pid"])
    if ai_available():
        assert "torch" in _mapped_model_libraries(worker_pid)


def test_the_app_holds_no_model_manager(stack_settings: Settings) -> None:
    with TestClient(create_app(stack_settings)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        held = [getattr(services, f.name) for f in dataclasses.fields(services)]
    assert not any(isinstance(v, ModelManager | AIService) for v in held)
    assert not hasattr(services, "ai")


@pytest.mark.parametrize(
    "where",
    [
        {"inference_subject": "memestream-test-nobody.inference"},  # no worker subscribed
        {"nats_url": "nats://127.0.0.1:1"},  # nobody listens there: NATS is down
    ],
    ids=["no-worker", "nats-down"],
)
def test_without_a_worker_the_api_answers_the_heuristic_at_once(
    stack_settings: Settings, where: dict[str, str]
) -> None:
    settings = stack_settings.model_copy(update={"inference_caption_deadline_s": 10.0, **where})
    with TestClient(create_app(settings)) as client:
        time.sleep(0.3)  # the client's NATS connection (where there is one) is made
        started = time.monotonic()
        response = client.post(
            "/api/meme/caption", json={"template_id": "expanding-brain", "topic": "tests"}
        )
        elapsed = time.monotonic() - started
        suggest = client.post("/api/templates/suggest", json={"text": "two buttons", "limit": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["source"], body["fallback"]) == ("heuristic", True)
    assert len(body["texts"]) == len(TemplateCatalog.default().get("expanding-brain").boxes)
    assert elapsed < 2.0, "the API waited although no worker could answer"
    assert suggest.status_code == 200 and suggest.json()["source"] == "heuristic"
    assert suggest.json()["templates"][0]["template_id"] == "two-buttons"
