"""The AI endpoints through the real API process: caption and template suggestions.

The API loads whatever models are installed (the packaged ones in CI), lazily; whether a
model or the heuristic answered, the shapes and rules checked here hold.
"""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image, ImageOps

from domain.templates import TemplateCatalog

pytestmark = pytest.mark.services
CAPTION_TIMEOUT = 90.0  # the first caption may wait for the model to load on a busy machine


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
