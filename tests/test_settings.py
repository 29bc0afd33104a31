"""Settings read the environment with the plan's names and reject nonsense."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from domain.settings import ImageQuality, ModelSize, Settings, StorageBackend


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
