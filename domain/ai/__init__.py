"""AI in the stream: captions, template suggestions, moderation and sentiment.

Everything here imports without torch, transformers or onnxruntime (the `ai` extra): the
backends import them lazily when a model is loaded, and every task has a rule-based fallback,
so a core install still answers (with the `heuristic` source) instead of failing.
"""

from domain.ai.manager import Answer, ModelManager, TaskRunner
from domain.ai.registry import ModelRegistry, ModelSpec, Task
from domain.ai.types import Caption, Decision, Sentiment, Suggestion, Verdict

__all__ = [
    "Answer",
    "Caption",
    "Decision",
    "ModelManager",
    "ModelRegistry",
    "ModelSpec",
    "Sentiment",
    "Suggestion",
    "Task",
    "TaskRunner",
    "Verdict",
]
