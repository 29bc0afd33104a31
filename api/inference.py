"""The API's side of the inference role: ask a worker over NATS, by a deadline, else the heuristic.

The API process loads no model (issue #15: one 300-box caption made every caption wait 20 s and
the API's memory grow tenfold). Each call publishes a request of domain/ai/contract.py to
`<INFERENCE_SUBJECT>.<task>` and waits for the reply until the request's deadline
(INFERENCE_CAPTION_DEADLINE_S for captions, INFERENCE_DEADLINE_S otherwise), then answers
with the rule-based heuristic, exactly the answer the in-process fallback gave: `source`
`heuristic`, `fallback` true. The same happens at once when no worker is subscribed (NATS
answers "no responders"), when NATS is down or not yet connected (the client reconnects in the
background), or when a reply cannot be read; `memestream_inference_client_total{outcome}` says
which. So an AI route costs the API an await and a few hundred bytes, never a model's CPU, and
never a 5xx for lack of AI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError

from domain.ai import contract, heuristics
from domain.ai.contract import CaptionJob, Job, Reply, SuggestJob, TextJob
from domain.ai.manager import HEURISTIC, Answer
from domain.ai.moderation import text_verdict
from domain.ai.sentiment import caption_text
from domain.ai.suggest import TemplateSuggester
from domain.ai.types import Caption, Sentiment, Suggestion, Verdict
from domain.metrics import INFERENCE_CLIENT
from domain.settings import Settings
from domain.templates import Template

log = logging.getLogger(__name__)


class InferenceClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prefix = settings.inference_subject
        self._nc: NatsClient | None = None
        self._connector: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def wait_connected(self) -> None:
        """Returns once the first connection is made (callers bound it with a timeout)."""
        await self._connected.wait()

    async def start(self) -> None:
        """Connects in the background: the API starts (and answers heuristics) without NATS."""
        self._connector = asyncio.create_task(self._connect(), name="inference-connect")

    async def stop(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None

    async def _connect(self) -> None:
        delay = 0.5
        name = f"memestream-api-{socket.gethostname()}-{os.getpid()}"
        while True:
            try:
                self._nc = await nats.connect(
                    self.settings.nats_url,
                    name=name,
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                )
                self._connected.set()
                return  # nats-py reconnects by itself from here on
            except Exception as exc:
                log.warning("NATS for inference not reachable (%s); heuristics meanwhile", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # --- tasks ------------------------------------------------------------------------------
    async def caption(self, topic: str, template: Template) -> Answer[Caption]:
        boxes = len(template.boxes)
        job = CaptionJob(
            contract.deadline_in(self.settings.inference_caption_deadline_s),
            topic,
            template.id,
            template.name,
            template.description,
            boxes,
        )
        reply = await self._ask(Job.CAPTION, job)
        if reply is not None:
            try:
                caption = contract.caption_from(reply.value, boxes)
                return Answer(caption, reply.source, reply.size, reply.fallback)
            except contract.BadMessage as exc:
                self._unreadable(Job.CAPTION, exc)
        return Answer(heuristics.caption(topic, boxes), HEURISTIC, None, True)

    async def fill(
        self, template: Template, texts: Sequence[str], topic: str | None = None
    ) -> list[str]:
        """`texts` padded to the template's boxes, each empty one filled by a suggestion
        (generate's `auto_caption`; the same rule as domain.ai.captions.Captioner.fill)."""
        padded = [*texts, *([""] * (len(template.boxes) - len(texts)))]
        if all(t.strip() for t in padded):
            return list(padded)
        subject = topic or " / ".join(t for t in padded if t.strip()) or template.name
        answer = await self.caption(subject, template)
        return [t if t.strip() else answer.value.texts[i] for i, t in enumerate(padded)]

    async def suggest(
        self, text: str, limit: int, fallback: TemplateSuggester
    ) -> tuple[list[Suggestion], str]:
        """Ranked templates and the source; `fallback` ranks by keywords (uploads included)."""
        job = SuggestJob(contract.deadline_in(self.settings.inference_deadline_s), text, limit)
        reply = await self._ask(Job.SUGGEST, job)
        if reply is not None:
            try:
                return contract.suggestions_from(reply.value)[:limit], reply.source
            except contract.BadMessage as exc:
                self._unreadable(Job.SUGGEST, exc)
        return fallback.heuristic(text, limit), HEURISTIC

    async def moderate_text(self, texts: Sequence[str]) -> Verdict:
        job = TextJob(contract.deadline_in(self.settings.inference_deadline_s), list(texts))
        reply = await self._ask(Job.MODERATE_TEXT, job)
        if reply is not None:
            try:
                return contract.verdict_from(reply.value)
            except contract.BadMessage as exc:
                self._unreadable(Job.MODERATE_TEXT, exc)
        return text_verdict(texts, 0.0, HEURISTIC, self.settings)

    async def sentiment(self, texts: Sequence[str]) -> Answer[Sentiment]:
        job = TextJob(contract.deadline_in(self.settings.inference_deadline_s), list(texts))
        reply = await self._ask(Job.SENTIMENT, job)
        if reply is not None:
            try:
                value = contract.sentiment_from(reply.value)
                return Answer(value, reply.source, reply.size, reply.fallback)
            except contract.BadMessage as exc:
                self._unreadable(Job.SENTIMENT, exc)
        return Answer(heuristics.sentiment(caption_text(texts)), HEURISTIC, None, True)

    # --- transport --------------------------------------------------------------------------
    async def _ask(self, job: Job, request: Any) -> Reply | None:
        """The worker's reply, or None (counted by why) when the heuristic must answer."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            return self._count(job, "unavailable")
        timeout = contract.remaining(request.deadline)
        if timeout <= 0:
            return self._count(job, "deadline")
        try:
            msg = await nc.request(
                contract.subject(self.prefix, job), contract.encode(request), timeout=timeout
            )
        except NoRespondersError:
            return self._count(job, "no_worker")
        except TimeoutError:  # nats.errors.TimeoutError is one
            return self._count(job, "deadline")
        except Exception as exc:  # connection closed or reconnecting: heuristics, never a 5xx
            log.warning("inference request failed: %s", exc)
            return self._count(job, "unavailable")
        try:
            reply = contract.decode(Reply, msg.data)
        except contract.BadMessage as exc:
            return self._unreadable(job, exc)
        self._count(job, "reply")
        return reply

    @staticmethod
    def _count(job: Job, outcome: str) -> None:
        INFERENCE_CLIENT.labels(task=job.value, outcome=outcome).inc()

    def _unreadable(self, job: Job, exc: Exception) -> None:
        log.warning("unreadable inference reply for %s: %s", job.value, exc)
        self._count(job, "error")
