"""Tiny random models for the AI tests, built once per session and saved with save_pretrained.

GPT-2 (captions), BERT and DistilBERT (embeddings) and ViT (image moderation) from small
configs, with tokenizers trained in memory on a few sentences: no weights from anywhere, and
loaded back through the manager's own loaders, exactly as the real models are.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = [
    "when the code finally compiles and the tests pass",
    "me at three in the morning thinking about bugs",
    "nobody expects the deadline on a friday",
    "choosing between two buttons is hard",
    "expanding brain from small to galaxy",
    "i love memes and i hate mondays",
    "hot take pineapple on pizza is great",
    "vibe check failed everything is broken",
    "top text bottom text drake approves",
]


@dataclass(frozen=True)
class TinyModels:
    gpt2: Path
    bert: Path
    distilbert: Path
    vit: Path
    broken: Path  # a folder with a config that cannot load


def _ai_installed() -> bool:
    from domain.ai.backends import ai_available

    return ai_available()


def require_ai() -> None:
    if not _ai_installed():
        pytest.skip("the ai extra (torch, transformers, onnxruntime) is not installed")


def _wordpiece(folder: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(
        CORPUS, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.save_pretrained(folder)


def _byte_bpe(folder: Path) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    fast.save_pretrained(folder)
    return tokenizer.get_vocab_size()


def build_tiny_models(root: Path) -> TinyModels:
    import torch
    from transformers import (
        BertConfig,
        BertModel,
        DistilBertConfig,
        DistilBertModel,
        GPT2Config,
        GPT2LMHeadModel,
        ViTConfig,
        ViTForImageClassification,
    )

    torch.manual_seed(0)
    gpt2 = root / "gpt2-tiny"
    vocab = _byte_bpe(gpt2)
    GPT2LMHeadModel(
        GPT2Config(vocab_size=vocab, n_positions=512, n_embd=32, n_layer=2, n_head=2)
    ).save_pretrained(gpt2)

    bert = root / "bert-tiny"
    _wordpiece(bert)
    size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(BertConfig(vocab_size=200, max_position_embeddings=128, **size)).save_pretrained(bert)

    distilbert = root / "distilbert-tiny"
    _wordpiece(distilbert)
    DistilBertModel(
        DistilBertConfig(vocab_size=200, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    ).save_pretrained(distilbert)

    vit = root / "vit-tiny"
    ViTForImageClassification(
        ViTConfig(
            image_size=32,
            patch_size=8,
            id2label={0: "sfw", 1: "nsfw"},
            label2id={"sfw": 0, "nsfw": 1},
            **size,
        )
    ).save_pretrained(vit)
    (vit / "preprocessor_config.json").write_text(
        json.dumps(
            {"size": {"height": 32, "width": 32}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
        )
    )

    broken = root / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    return TinyModels(gpt2, bert, distilbert, vit, broken)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    require_ai()
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))
