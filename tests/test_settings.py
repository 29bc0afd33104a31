"""Settings read the environment with the plan's names and reject nonsense."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from domain.settings import (
    MAX_IMAGE_BYTES,
    ImageQuality,
    ModelSize,
    Settings,
    StorageBackend,
    get_settings,
)


def test_plan_names_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGE_QUALITY", "lossless")
    monkeypatch.setenv("CACHE_SIZE_MB", "512")
    monkeypatch.setenv("WORKER_THREADS", "3")
    monkeypatch.setenv("AI_MODEL_SIZE", "large")
    monkeypatch.setenv("REDIS_POOL_SIZE", "7")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("STORAGE_BACKEND", "filesystem")
    settings = Settings()
    assert settings.image_quality is ImageQuality.LOSSLESS
    assert settings.cache_size_mb == 512
    assert settings.worker_threads == 3
    assert settings.ai_model_size is ModelSize.LARGE
    assert settings.redis_pool_size == 7
    assert settings.kafka_bootstrap_servers == "127.0.0.1:1"
    assert settings.storage_backend is StorageBackend.FILESYSTEM


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IMAGE_QUALITY", "ultra"),
        ("CACHE_SIZE_MB", "0"),
        ("WORKER_THREADS", "-1"),
        ("REDIS_POOL_SIZE", "lots"),
        ("AI_MODEL_SIZE", "huge"),
    ],
)
def test_invalid_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_relative_paths_resolve_from_the_project_root() -> None:
    from domain.settings import PROJECT_ROOT

    settings = Settings()
    assert settings.stack_path == PROJECT_ROOT / ".stack"
    assert (PROJECT_ROOT / "pyproject.toml").exists()


def test_upload_and_frame_limits_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from domain.rendering.decode import MAX_INPUT_BYTES

    monkeypatch.delenv("MAX_UPLOAD_BYTES", raising=False)
    monkeypatch.delenv("MAX_BODY_BYTES", raising=False)
    defaults = Settings()
    # Uploads default to what the engine decodes, and may not exceed it (it would not render).
    assert defaults.max_upload_bytes == MAX_IMAGE_BYTES == MAX_INPUT_BYTES
    assert defaults.max_body_bytes < 10_000_000 < defaults.max_upload_bytes
    monkeypatch.setenv("MAX_UPLOAD_BYTES", str(12 * 1024 * 1024))
    monkeypatch.setenv("MAX_FRAMES", "40")
    settings = Settings()
    assert (settings.max_upload_bytes, settings.max_frames) == (12 * 1024 * 1024, 40)
    for name, value in (("MAX_UPLOAD_BYTES", str(MAX_IMAGE_BYTES + 1)), ("MAX_FRAMES", "0")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValidationError):
            Settings()


def test_max_frames_is_the_one_cap_of_templates_and_renders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from domain.rendering.options import DEFAULT_MAX_FRAMES, RenderOptions
    from domain.templates.catalog import template_from_config

    monkeypatch.delenv("MAX_FRAMES", raising=False)
    assert Settings().max_frames == DEFAULT_MAX_FRAMES == 120
    config = {"size": [64, 64], "artwork": {}, "boxes": [{"x": 0, "y": 0, "width": 8, "height": 8}]}
    monkeypatch.setenv("MAX_FRAMES", "7")
    get_settings.cache_clear()
    try:
        assert RenderOptions().max_frames == 7
        assert template_from_config("ok", config | {"animation": {"frames": 7}}).frame_count == 7
        with pytest.raises(ValueError, match=r"1\.\.7 \(MAX_FRAMES\)"):
            template_from_config("long", config | {"animation": {"frames": 8}})
    finally:
        get_settings.cache_clear()
