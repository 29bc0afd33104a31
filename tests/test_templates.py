"""The template catalogue: data loads, validates, and draws deterministically."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from domain.templates import Template, TemplateCatalog, TextBox, UnknownTemplate
from domain.templates.artwork import ArtworkError, draw_frame
from domain.templates.catalog import TemplateConfigError, load_template
from domain.templates.lru import ByteLRU


@pytest.fixture(scope="module")
def catalog() -> TemplateCatalog:
    return TemplateCatalog.default()


def test_catalog_has_the_starter_templates(catalog: TemplateCatalog) -> None:
    ids = {t.id for t in catalog.all()}
    assert {"drake", "two-buttons", "expanding-brain", "classic", "vibe-check"} <= ids
    assert len(ids) >= 5
    assert TemplateCatalog.default() is catalog  # cached per process


def test_get_returns_typed_template(catalog: TemplateCatalog) -> None:
    drake = catalog.get("drake")
    assert isinstance(drake, Template)
    assert (drake.width, drake.height) == (600, 600)
    assert drake.tags and drake.category and drake.name
    assert all(isinstance(b, TextBox) for b in drake.boxes)
    assert len(drake.boxes) == 2
    assert not drake.animated


def test_unknown_template_is_a_lookup_error(catalog: TemplateCatalog) -> None:
    with pytest.raises(UnknownTemplate) as info:
        catalog.get("no-such-meme")
    assert isinstance(info.value, LookupError)
    assert info.value.template_id == "no-such-meme"
    assert "no-such-meme" in str(info.value)


def test_boxes_lie_inside_their_images(catalog: TemplateCatalog) -> None:
    for t in catalog.all():
        for b in t.boxes:
            assert b.width > 0 and b.height > 0
            assert b.x >= 0 and b.x + b.width <= t.width, (t.id, b.name)
            assert b.y >= 0 and b.y + b.height <= t.height, (t.id, b.name)


def test_images_match_declared_size_and_are_cached(catalog: TemplateCatalog) -> None:
    for t in catalog.all():
        im = t.image()
        assert im.mode == "RGB"
        assert im.size == (t.width, t.height)
        assert t.image() is im


def test_animated_template_has_distinct_frames(catalog: TemplateCatalog) -> None:
    vibe = catalog.get("vibe-check")
    frames = vibe.frames()
    assert vibe.animated and len(frames.images) == 17 == vibe.frame_count
    assert frames.durations == [vibe.frame_duration_ms] * 17
    first, middle = frames.images[0].tobytes(), frames.images[8].tobytes()
    assert first != middle


def test_catalog_has_light_and_dark_images(catalog: TemplateCatalog) -> None:
    brightness = {t.id: ImageStat.Stat(t.image().convert("L")).mean[0] for t in catalog.all()}
    assert max(brightness.values()) > 170, brightness
    assert min(brightness.values()) < 70, brightness


def test_drawing_is_deterministic(catalog: TemplateCatalog) -> None:
    t = catalog.get("classic")
    again = draw_frame(t.artwork, t.width, t.height)
    assert again.tobytes() == t.image().tobytes()


def test_templates_pickle_for_the_process_pool(catalog: TemplateCatalog) -> None:
    t = catalog.get("two-buttons")
    clone = pickle.loads(pickle.dumps(t))
    assert clone == t and clone.boxes[0].rotation == t.boxes[0].rotation


def test_bad_configs_are_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    cfg = folder / "config.yaml"
    cfg.write_text(
        "name: x\nsize: [100, 100]\nartwork: {}\nboxes:\n  - {x: 90, y: 0, width: 50, height: 10}\n"
    )
    with pytest.raises(TemplateConfigError, match="outside"):
        load_template(cfg)
    cfg.write_text("name: x\nsize: [100, 100]\nboxes: [{x: 0, y: 0, width: 5, height: 5}]\n")
    with pytest.raises(TemplateConfigError, match="artwork"):
        load_template(cfg)
    cfg.write_text(
        "name: x\nsize: [100, 100]\nartwork: {}\nboxes:\n"
        "  - {x: 0, y: 0, width: 5, height: 5, colour: red}\n"
    )
    with pytest.raises(TemplateConfigError, match="unknown keys"):
        load_template(cfg)


def test_unknown_artwork_layer_is_an_error() -> None:
    with pytest.raises(ArtworkError):
        draw_frame({"layers": [{"type": "teapot"}]}, 32, 32)


def test_byte_lru_evicts_least_recently_used() -> None:
    lru: ByteLRU[str] = ByteLRU(100)
    lru.put("a", "A", 40)
    lru.put("b", "B", 40)
    assert lru.get("a") == "A"  # a is now most recent
    lru.put("c", "C", 40)
    assert "b" not in lru and "a" in lru and "c" in lru
    assert lru.size == 80
    lru.put("huge", "H", 1000)
    assert "huge" not in lru


def test_gradient_background_spans_its_stops() -> None:
    im = draw_frame({"background": {"gradient": ["#000000", "#ffffff"]}}, 20, 100)
    assert isinstance(im, Image.Image)
    assert im.getpixel((10, 1))[0] < 20 and im.getpixel((10, 98))[0] > 235
