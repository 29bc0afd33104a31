"""One object per process holding the model manager and the tasks built on it.

The inference worker (streams/inference.py, for the API's requests: the API process loads no
model) and the render worker (moderation in-stream) each create one (`AIService(settings,
catalog)`): they share nothing across processes, and within a process every caller shares the
manager's loaded models and micro-batchers, which is what makes batching across requests and
agents work.
"""

from __future__ import annotations

from domain.ai.captions import Captioner
from domain.ai.manager import ModelManager
from domain.ai.moderation import IMAGE, TEXT, Moderator
from domain.ai.registry import ModelRegistry
from domain.ai.sentiment import SENTIMENT, SentimentAnalyzer
from domain.ai.suggest import TemplateSuggester
from domain.settings import Settings
from domain.templates import TemplateCatalog


class AIService:
    def __init__(
        self,
        settings: Settings,
        catalog: TemplateCatalog,
        registry: ModelRegistry | None = None,
    ) -> None:
        self.manager = ModelManager(settings, registry)
        self.captions = Captioner(self.manager)
        self.suggester = TemplateSuggester(self.manager, catalog)
        self.moderator = Moderator(self.manager, settings)
        self.sentiment = SentimentAnalyzer(self.manager)

    async def warm_stream(self) -> dict[str, str]:
        """Loads what the render worker uses (moderation and sentiment) before it consumes."""
        return await self.manager.warm_up([TEXT, IMAGE, SENTIMENT])

    async def aclose(self) -> None:
        await self.manager.aclose()
