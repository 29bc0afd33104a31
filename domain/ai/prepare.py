"""One-time set-up of the packaged models: `memestream ai prepare`.

Loading SmolLM2's GGUF through transformers de-quantises every tensor (13 s on a quiet
2-core machine, 35-45 s on a busy one), so it is done once here and saved as a plain
transformers folder (float32 safetensors, ~520 MB) under `CACHE_DIR/ai/`, outside the repo.
The folder is written next to its final place and renamed when complete, with a marker
file, so a half-written conversion is never loaded. The other two models are used in place.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from domain.ai.backends import ModelUnavailable, ai_available, offline_environment
from domain.ai.registry import (
    READY_MARKER,
    caption_cache_dir,
    gguf_file,
    minilm_dir,
    nsfw_onnx,
)
from domain.settings import Settings


@dataclass(frozen=True, slots=True)
class PreparedModel:
    name: str
    path: Path | None
    status: str  # "ready", "converted", "missing"
    seconds: float = 0.0


def convert_caption_model(settings: Settings, *, force: bool = False) -> PreparedModel:
    """GGUF -> transformers folder in the cache; a no-op when already done."""
    target = caption_cache_dir(settings)
    if (target / READY_MARKER).exists() and not force:
        return PreparedModel("smollm2-135m", target, "ready")
    source = gguf_file()
    if source is None:
        return PreparedModel("smollm2-135m", None, "missing")
    if not ai_available():
        raise ModelUnavailable("the ai extra is not installed (pip install '.[ai]')")
    offline_environment()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True)
    # The tensors are de-quantised already; drop the GGUF quantizer so the model saves plainly.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / READY_MARKER).write_text(f"converted from {source}\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return PreparedModel("smollm2-135m", target, "converted", time.perf_counter() - started)


def prepare(settings: Settings, *, force: bool = False) -> list[PreparedModel]:
    """Converts what needs converting and reports where every packaged model is."""
    minilm, nsfw = minilm_dir(), nsfw_onnx()
    return [
        convert_caption_model(settings, force=force),
        PreparedModel("minilm-l6", minilm, "ready" if minilm else "missing"),
        PreparedModel("open-nsfw", nsfw, "ready" if nsfw else "missing"),
    ]
