"""Loaded models behind three small interfaces: generate text, embed text, score images.

torch, transformers and onnxruntime are imported here, inside the loaders, so the rest of
`domain.ai` imports on a core install. Every loader takes a local path only: `HF_HUB_OFFLINE`
is set before transformers is imported and `local_files_only=True` is passed, so nothing is
ever fetched from a hub. Instances are used from one inference thread at a time (the manager
gives each loaded model its own single-thread executor).
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from domain.ai.registry import ModelKind, ModelSpec


class ModelUnavailable(RuntimeError):
    """The `ai` extra (torch, transformers, onnxruntime) is missing or the files are absent."""


_torch_lock = threading.Lock()
_torch_threads: int | None = None


def offline_environment() -> None:
    """Hub access off before transformers is imported; tokenizers must not fork threads."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")


def ai_available() -> bool:
    """True when the `ai` extra is importable (cheap: looks for the modules, imports none)."""
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("torch", "transformers", "onnxruntime"))


def _torch(threads: int) -> Any:
    offline_environment()
    try:
        import torch
    except ImportError as exc:
        raise ModelUnavailable("torch is not installed (pip install '.[ai]')") from exc
    global _torch_threads
    with _torch_lock:
        if _torch_threads != threads:
            torch.set_num_threads(threads)
            _torch_threads = threads
    return torch


def _transformers() -> Any:
    offline_environment()
    try:
        import transformers
    except ImportError as exc:
        raise ModelUnavailable("transformers is not installed (pip install '.[ai]')") from exc
    transformers.utils.logging.disable_progress_bar()
    return transformers


def _torch_bytes(model: Any) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _require(path: Path) -> Path:
    if not path.exists():
        raise ModelUnavailable(f"model files not found at {path}")
    return path


class LoadedModel:
    """What the manager needs of every model: a name, a size estimate and a per-model cache."""

    def __init__(self, spec: ModelSpec, memory_bytes: int) -> None:
        self.spec = spec
        self.memory_bytes = memory_bytes
        self._cache: dict[object, Any] = {}

    def cached(self, key: object, compute: Callable[[], Any]) -> Any:
        """Per-model memo (anchor or template embeddings): computed once per loaded model."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


class CausalLM(LoadedModel):
    """A decoder-only chat model; prompts use the tokenizer's chat template when it has one."""

    def __init__(self, spec: ModelSpec, threads: int) -> None:
        torch = _torch(threads)
        transformers = _transformers()
        path = str(_require(spec.path))
        self.torch = torch
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True
        ).eval()
        super().__init__(spec, _torch_bytes(self.model))

    def prompt(self, system: str, user: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            return str(
                self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
            )
        return f"{system}\n{user}\n"

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy continuations of a batch of prompts (left-padded, one forward per token)."""
        encoded = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        with self.torch.inference_mode():
            output = self.model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                repetition_penalty=1.3,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        return [str(t) for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


EMBEDDING_MEMO = 2048  # texts; ~3 MB of 384-dim float32 rows


class Embedder(LoadedModel):
    """Sentence embeddings: mean of the token states over the attention mask, L2-normalised."""

    def __init__(self, spec: ModelSpec, threads: int) -> None:
        torch = _torch(threads)
        transformers = _transformers()
        path = str(_require(spec.path))
        self.torch = torch
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
        limit = getattr(self.model.config, "max_position_embeddings", 512) or 512
        self.max_length = min(int(limit), 256)
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        super().__init__(spec, _torch_bytes(self.model))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised row per text; recent texts come from a small memo, since the
        stream embeds each caption for text moderation and again for sentiment."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            for text, row in zip(missing, self._embed(missing), strict=True):
                self._memo[text] = row
                if len(self._memo) > EMBEDDING_MEMO:
                    self._memo.popitem(last=False)
        for text in texts:
            self._memo.move_to_end(text)
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        encoded = self.tokenizer(
            list(texts),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_length,
        )
        if not self._uses_token_types():
            encoded.pop("token_type_ids", None)
        with self.torch.inference_mode():
            states = self.model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = self.torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.float().numpy()

    def _uses_token_types(self) -> bool:
        return int(getattr(self.model.config, "type_vocab_size", 0) or 0) > 0


# Open-NSFW's input pipeline (Caffe, BGR, VGG means, JPEG round trip), as Yahoo deployed it.
_NSFW_RESIZE, _NSFW_CROP = 256, 224
_VGG_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
UNSAFE_LABELS = frozenset({"nsfw", "unsafe", "porn", "hentai", "sexy", "explicit"})


class OnnxImageClassifier(LoadedModel):
    """Open-NSFW through onnxruntime: (N, 224, 224, 3) BGR -> P(nsfw)."""

    def __init__(self, spec: ModelSpec, threads: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelUnavailable("onnxruntime is not installed (pip install '.[ai]')") from exc
        path = _require(spec.path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        super().__init__(spec, path.stat().st_size * 2)

    @staticmethod
    def preprocess(image: Image.Image) -> np.ndarray:
        resized = image.convert("RGB").resize((_NSFW_RESIZE, _NSFW_RESIZE), Image.BILINEAR)
        buffer = io.BytesIO()
        resized.save(buffer, format="JPEG")
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), np.float32)
        start = (_NSFW_RESIZE - _NSFW_CROP) // 2
        crop = decoded[start : start + _NSFW_CROP, start : start + _NSFW_CROP, :]
        return crop[:, :, ::-1] - _VGG_MEAN_BGR

    def unsafe_scores(self, images: Sequence[Image.Image]) -> np.ndarray:
        batch = np.stack([self.preprocess(im) for im in images]).astype(np.float32)
        probabilities = self.session.run(None, {self.input_name: batch})[0]
        return np.asarray(probabilities[:, 1], dtype=np.float32)


class HFImageClassifier(LoadedModel):
    """A transformers image classifier (e.g. ViT); P(unsafe) sums its unsafe labels.

    Pre-processing is done here with Pillow and numpy (resize, rescale, normalise as the
    folder's preprocessor_config.json says), so torchvision is never needed.
    """

    def __init__(self, spec: ModelSpec, threads: int) -> None:
        torch = _torch(threads)
        transformers = _transformers()
        path = _require(spec.path)
        self.torch = torch
        self.model = transformers.AutoModelForImageClassification.from_pretrained(
            str(path), local_files_only=True
        ).eval()
        config = self.model.config
        side = int(getattr(config, "image_size", 224))
        processor = _json(path / "preprocessor_config.json")
        size = processor.get("size", {})
        self.height = int(size.get("height", side)) if isinstance(size, dict) else int(size)
        self.width = int(size.get("width", side)) if isinstance(size, dict) else int(size)
        self.mean = np.array(processor.get("image_mean", [0.5, 0.5, 0.5]), np.float32)
        self.std = np.array(processor.get("image_std", [0.5, 0.5, 0.5]), np.float32)
        labels = {int(i): str(n).lower() for i, n in config.id2label.items()}
        unsafe = [i for i, name in labels.items() if name in UNSAFE_LABELS]
        if not unsafe:
            if len(labels) != 2:
                raise ModelUnavailable(f"{path}: no unsafe label among {sorted(labels.values())}")
            unsafe = [1]
        self.unsafe = unsafe
        super().__init__(spec, _torch_bytes(self.model))

    def unsafe_scores(self, images: Sequence[Image.Image]) -> np.ndarray:
        arrays = [
            (
                np.asarray(im.convert("RGB").resize((self.width, self.height)), np.float32) / 255.0
                - self.mean
            )
            / self.std
            for im in images
        ]
        pixels = self.torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy())
        with self.torch.inference_mode():
            logits = self.model(pixel_values=pixels).logits
        probabilities = logits.float().softmax(-1).numpy()
        return probabilities[:, self.unsafe].sum(axis=1).astype(np.float32)


def _json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


ImageScorer = OnnxImageClassifier | HFImageClassifier


def load_model(spec: ModelSpec, threads: int) -> LoadedModel:
    """Loads one model from local files; raises ModelUnavailable when it cannot be had."""
    match spec.kind:
        case ModelKind.CAUSAL_LM:
            return CausalLM(spec, threads)
        case ModelKind.EMBEDDER:
            return Embedder(spec, threads)
        case ModelKind.IMAGE_CLASSIFIER:
            if spec.path.suffix == ".onnx":
                return OnnxImageClassifier(spec, threads)
            return HFImageClassifier(spec, threads)
    raise ModelUnavailable(f"unknown model kind {spec.kind!r}")
