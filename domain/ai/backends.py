"""Loaded models behind three small interfaces: generate text, embed text, score images.

torch, transformers and onnxruntime are imported here, inside the loaders, so the rest of
`domain.ai` imports on a core install. Every loader takes a local path only: `HF_HUB_OFFLINE`
is set before transformers is imported and `local_files_only=True` is passed, so nothing is
ever fetched from a hub. Instances are used from one inference thread at a time (the manager
gives each loaded model its own single-thread executor); image classifiers split their work
into `preprocess` (one image, thread-safe, run by the callers' preparation threads) and
`scores` (a stacked batch, the only part that runs on the inference thread).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from domain.ai.registry import ModelKind, ModelSpec

log = logging.getLogger(__name__)


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

    def generate(
        self, prompts: Sequence[str], max_new_tokens: int, max_time: float | None = None
    ) -> list[str]:
        """Greedy continuations of a batch of prompts (left-padded, one forward per token);
        with `max_time`, generation stops after that many seconds (checked per token)."""
        encoded = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        bound = {} if max_time is None else {"max_time": max(0.0, max_time)}
        with self.torch.inference_mode():
            output = self.model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                repetition_penalty=1.3,
                **bound,
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
    """Open-NSFW through onnxruntime: (N, 224, 224, 3) BGR -> P(nsfw).

    The graph goes through `foldable_onnx` first, so its batch norms fold into the Convs. The
    session's worker threads do not spin while idle: the render worker's own threads share the
    cores, and on a busy 2-core machine a spinning second thread nearly doubled the CPU per
    image.
    """

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
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        self.folded = 0
        self.session: Any = None
        try:
            graph, folded = foldable_onnx(path.read_bytes())
            if folded:
                self.session = ort.InferenceSession(graph, options, providers=providers)
                self.folded = folded
        except Exception as exc:  # an optimisation only: the file as shipped still answers
            log.warning("%s: graph rewrite failed (%s); loading it unchanged", path, exc)
        if self.session is None:  # nothing to fold, or the rewrite failed
            self.session = ort.InferenceSession(str(path), options, providers=providers)
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
        return np.ascontiguousarray(crop[:, :, ::-1] - _VGG_MEAN_BGR, dtype=np.float32)

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """P(nsfw) of a stacked batch of `preprocess` outputs: the session run only."""
        probabilities = self.session.run(None, {self.input_name: np.asarray(batch, np.float32)})[0]
        return np.asarray(probabilities[:, 1], dtype=np.float32)

    def unsafe_scores(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.scores(np.stack([self.preprocess(im) for im in images]))


# ONNX field numbers (onnx/onnx.proto) of the few fields `foldable_onnx` reads or writes.
_ONNX_FLOAT = 1  # TensorProto.DataType.FLOAT


@functools.cache
def _onnx_subset() -> tuple[Any, Any]:
    """(ModelProto, TensorProto) classes that know only the fields the rewrite needs; every
    other field is kept as an unknown field, byte for byte, so the `onnx` package is not needed
    (protobuf comes with onnxruntime)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fd = descriptor_pb2.FieldDescriptorProto
    package = "memestream_onnx_subset"
    file = descriptor_pb2.FileDescriptorProto(
        name=f"{package}.proto", package=package, syntax="proto2"
    )

    def message(name: str, *fields: tuple[str, int, int, int, str | None]) -> None:
        proto = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = proto.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = f".{package}.{type_name}"
            if kind == fd.TYPE_FLOAT and label == fd.LABEL_REPEATED:
                field.options.packed = True

    one, many = fd.LABEL_OPTIONAL, fd.LABEL_REPEATED
    message(
        "TensorProto",
        ("dims", 1, fd.TYPE_INT64, many, None),
        ("data_type", 2, fd.TYPE_INT32, one, None),
        ("float_data", 4, fd.TYPE_FLOAT, many, None),
        ("name", 8, fd.TYPE_STRING, one, None),
        ("raw_data", 9, fd.TYPE_BYTES, one, None),
    )
    message(
        "NodeProto",
        ("input", 1, fd.TYPE_STRING, many, None),
        ("output", 2, fd.TYPE_STRING, many, None),
        ("op_type", 4, fd.TYPE_STRING, one, None),
    )
    message(
        "GraphProto",
        ("node", 1, fd.TYPE_MESSAGE, many, "NodeProto"),
        ("initializer", 5, fd.TYPE_MESSAGE, many, "TensorProto"),
    )
    message("ModelProto", ("graph", 7, fd.TYPE_MESSAGE, one, "GraphProto"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.ModelProto")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.TensorProto")),
    )


def _float_values(tensor: Any) -> np.ndarray | None:
    """A float initializer's values, or None when they are not inline (external data)."""
    if tensor.HasField("raw_data"):
        values = np.frombuffer(tensor.raw_data, dtype="<f4")
    else:
        values = np.asarray(tensor.float_data, dtype=np.float32)
    return values if values.size == int(np.prod(list(tensor.dims))) else None


def foldable_onnx(data: bytes) -> tuple[bytes, int]:
    """The model with every `Sub(x, constant)` turned into `Add(x, -constant)`, and how many.

    Open-NSFW's exporter wrote each batch norm as Sub, Mul, Add after its Conv. onnxruntime
    folds a constant Add or Mul that follows a Conv into the Conv's weights, but not a Sub, so
    all 53 norms ran as separate element-wise passes (plus NCHWc layout reorders): ~40 % of the
    CPU per image at batch 1 and more at batch 16, whose activations no longer fit in cache.
    With the Sub made an Add (exact: x - c == x + (-c) in IEEE arithmetic) every norm folds
    into its Conv; scores are unchanged and a batch of 16 costs ~30-40 % less CPU.
    """
    model_class, tensor_class = _onnx_subset()
    model = model_class()
    model.ParseFromString(data)
    graph = model.graph
    floats = {t.name: t for t in graph.initializer if t.data_type == _ONNX_FLOAT}
    names = {t.name for t in graph.initializer}
    negated: dict[str, str] = {}
    added = []
    rewritten = 0
    for node in graph.node:
        if node.op_type != "Sub" or len(node.input) != 2 or node.input[1] not in floats:
            continue
        constant = node.input[1]
        if constant not in negated:
            values = _float_values(floats[constant])
            if values is None:
                continue
            name = f"{constant}/negated"
            while name in names:
                name += "_"
            names.add(name)
            tensor = tensor_class()
            tensor.CopyFrom(floats[constant])
            tensor.name = name
            tensor.ClearField("float_data")
            tensor.raw_data = (-values).astype("<f4").tobytes()
            added.append(tensor)
            negated[constant] = name
        node.op_type = "Add"
        node.input[1] = negated[constant]
        rewritten += 1
    graph.initializer.extend(added)
    return model.SerializeToString(), rewritten


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

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One image as the model's (H, W, 3) normalised input; thread-safe, model-free."""
        resized = image.convert("RGB").resize((self.width, self.height))
        return (np.asarray(resized, np.float32) / 255.0 - self.mean) / self.std

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """P(unsafe) of a stacked batch of `preprocess` outputs."""
        pixels = self.torch.from_numpy(
            np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        )
        with self.torch.inference_mode():
            logits = self.model(pixel_values=pixels).logits
        probabilities = logits.float().softmax(-1).numpy()
        return probabilities[:, self.unsafe].sum(axis=1).astype(np.float32)

    def unsafe_scores(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.scores(np.stack([self.preprocess(im) for im in images]))


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
