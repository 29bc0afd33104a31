"""The `inference` worker role: AI for API requests, served over NATS request-reply.

`python -m streams worker --role inference` (or `memestream worker --role inference`). Not a
Faust app: nothing is consumed from Kafka. The worker subscribes to `<INFERENCE_SUBJECT>.*` in
the queue group of domain/ai/contract.py, so NATS hands each request to one replica, and
answers captions, text suggestions, text moderation and sentiment from one `AIService` (so
concurrent requests share micro-batches). The API process loads no model; it asks here and,
when no reply comes by the request's deadline, answers with the heuristic itself.

Deadlines: a request found past its deadline is dropped without running and without a reply,
when it arrives, after waiting for one of INFERENCE_CONCURRENCY slots, and while it waits in a
model's micro-batcher (the wait is cancelled at the deadline and the batcher leaves cancelled
items out of the next batch). Each drop counts in `memestream_inference_expired_total{stage}`.
A caption batch already on the model's thread stops generating at the latest deadline of its
requests (the caption runner's `max_time`), and what it gave by then is discarded if nobody
waits; the other tasks' batches are short (one embedding pass) and run to their end. So a
burst the worker cannot serve in time costs the work it can still deliver, not a growing queue
of answers nobody waits for (the failure of issue #15).

Metrics and health are served on `WORKER_WEB_PORT` + the role's index (producers/roles.py):
`/metrics`, and `/health` (200 once subscribed, 503 before and while NATS is away).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections import Counter
from typing import Any

import nats
from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from domain.ai import contract
from domain.ai.captions import CaptionRequest
from domain.ai.contract import Job, Reply
from domain.ai.manager import HEURISTIC
from domain.ai.moderation import TEXT
from domain.ai.sentiment import SENTIMENT, caption_text
from domain.ai.service import AIService
from domain.logs import setup_logging
from domain.metrics import INFERENCE_EXPIRED, INFERENCE_REQUESTS, QUEUE_DEPTH, render_metrics
from domain.settings import Settings
from domain.templates import TemplateCatalog
from producers.roles import INFERENCE, web_port
from sinks.postgres.pool import create_pool
from sinks.postgres.templates import TemplateRepository
from sinks.postgres.upload_refresher import UploadRefresher

log = logging.getLogger(__name__)
#: Requests taken from NATS and not yet answered or dropped (waiting for a slot or running):
#: what KEDA scales the role on (deploy/generate.py).
IN_FLIGHT = QUEUE_DEPTH.labels(queue="inference_requests")
#: Time kept between the end of a caption's generation and its deadline, for parsing and the
#: reply's way back through NATS.
REPLY_MARGIN_S = 0.3


class InferenceWorker:
    """Serves the jobs of domain/ai/contract.py from one AIService; `slots` bounds how many
    run at once (INFERENCE_CONCURRENCY)."""

    def __init__(
        self, settings: Settings, ai: AIService, uploads: UploadRefresher | None = None
    ) -> None:
        self.settings = settings
        self.ai = ai
        self.uploads = uploads
        self.prefix = settings.inference_subject
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (job, outcome), this worker's
        self.slots = asyncio.Semaphore(settings.inference_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscription: Subscription | None = None

    @property
    def subscribed(self) -> bool:
        return self._subscription is not None

    async def subscribe(self, nc: NatsClient) -> None:
        self._subscription = await nc.subscribe(
            f"{self.prefix}.*", queue=contract.QUEUE_GROUP, cb=self._received
        )

    async def stop(self, grace_s: float = 10.0) -> None:
        """No new requests; those in flight get `grace_s` to finish (their deadlines are
        shorter than that anyway)."""
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)

    async def _received(self, msg: Msg) -> None:
        # A task per request: the subscription hands messages over one at a time, and jobs
        # must overlap to share micro-batches.
        task = asyncio.create_task(self.serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def serve(self, msg: Msg) -> None:
        name = msg.subject.rsplit(".", 1)[-1]
        try:
            job = Job(name)
            request = contract.decode(contract.JOB_TYPES[job], msg.data)
        except ValueError as exc:  # BadMessage included
            self._count(name if name in set(Job) else "unknown", "error")
            await self._respond(msg, contract.error(str(exc)))
            return
        if contract.remaining(request.deadline) <= 0:
            self._expired(job, "received")
            return
        IN_FLIGHT.inc()
        try:
            async with self.slots:
                left = contract.remaining(request.deadline)
                if left <= 0:
                    self._expired(job, "queued")
                    return
                try:
                    reply = await asyncio.wait_for(self._run(job, request, left), left)
                except TimeoutError:
                    self._expired(job, "running")
                    return
                except Exception as exc:  # a field of the wrong type: the caller falls back
                    log.warning("inference %s failed: %s", job.value, exc)
                    self._count(job, "error")
                    await self._respond(msg, contract.error(f"{type(exc).__name__}: {exc}"))
                    return
        finally:
            IN_FLIGHT.dec()
        self._count(job, "answered")
        await self._respond(msg, contract.encode(reply))

    async def _run(self, job: Job, request: Any, left: float) -> Reply:
        ai = self.ai
        match job:
            case Job.CAPTION:
                item = CaptionRequest(
                    request.topic,
                    request.template_id,
                    request.name,
                    request.description,
                    int(request.boxes),
                    # Stop generating a little early: what was generated by then (the rest
                    # of the boxes filled by the heuristic) still reaches the caller in time.
                    deadline=float(request.deadline) - REPLY_MARGIN_S,
                )
                runner = ai.captions.runner
                timeout = min(left, runner.timeout_s or ai.manager.timeout_s)
                caption = await ai.manager.infer(runner, item, timeout_s=timeout)
                value: Any = contract.caption_value(caption.value)
                return Reply(value, caption.source, caption.size, caption.fallback)
            case Job.SUGGEST:
                if self.uploads is not None:
                    await self.uploads.refresh(ai.suggester)
                ranked = await ai.suggester.answer(request.text, int(request.limit))
                value = contract.suggestions_value(ranked.value)
                return Reply(value, ranked.source, ranked.size, ranked.fallback)
            case Job.MODERATE_TEXT:
                verdict = await ai.moderator.check_text(list(request.texts))
                value = contract.verdict_value(verdict)
                return Reply(value, verdict.source, None, verdict.source == HEURISTIC)
            case Job.SENTIMENT:
                sentiment = await ai.sentiment.analyze(caption_text(list(request.texts)))
                value = contract.sentiment_value(sentiment.value)
                return Reply(value, sentiment.source, sentiment.size, sentiment.fallback)
        raise AssertionError(job)  # every Job is matched above

    def _expired(self, job: Job, stage: str) -> None:
        INFERENCE_EXPIRED.labels(task=job.value, stage=stage).inc()
        self._count(job, "expired")

    def _count(self, job: str, outcome: str) -> None:
        INFERENCE_REQUESTS.labels(task=str(job), outcome=outcome).inc()
        self.outcomes[(str(job), outcome)] += 1

    @staticmethod
    async def _respond(msg: Msg, data: bytes) -> None:
        if not msg.reply:
            return
        try:
            await msg.respond(data)
        except Exception as exc:  # NATS went away: the caller answers with the heuristic
            log.warning("inference reply not sent: %s", exc)


async def connect(settings: Settings, stop: asyncio.Event) -> NatsClient | None:
    """A NATS connection, retried until it succeeds (None when stopped first); once made,
    nats-py reconnects on its own and resubscribes."""
    name = f"memestream-inference-{socket.gethostname()}-{os.getpid()}"
    delay = 0.5
    while not stop.is_set():
        try:
            return await nats.connect(
                settings.nats_url,
                name=name,
                connect_timeout=3,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
            )
        except Exception as exc:
            log.warning("NATS at %s not reachable (%s); retrying", settings.nats_url, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, 5.0)
    return None


async def serve_web(settings: Settings, worker: InferenceWorker, nc: list[NatsClient]) -> Any:
    """`/metrics` and `/health` on the role's web port; returns the runner to clean up."""

    async def metrics(_: web.Request) -> web.Response:
        body, content_type = render_metrics()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def health(_: web.Request) -> web.Response:
        ready = worker.subscribed and bool(nc) and nc[0].is_connected
        body = {"ready": ready, "pid": os.getpid()}
        return web.json_response(body, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(
        runner, settings.api_host, web_port(settings.worker_web_port, INFERENCE)
    ).start()
    return runner


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Warms the models, then serves until `stop` is set; SIGTERM drains in-flight requests."""
    ai = AIService(settings, TemplateCatalog.default())
    pool = create_pool(settings)
    await pool.open(wait=False)  # suggestions work without PostgreSQL (catalogue only)
    worker = InferenceWorker(settings, ai, UploadRefresher(TemplateRepository(pool)))
    connection: list[NatsClient] = []
    web_runner = await serve_web(settings, worker, connection)
    try:
        # Before subscribing: a new replica joins the queue group ready to answer in time.
        runners = [ai.captions.runner, ai.suggester.runner, TEXT, SENTIMENT]
        await ai.manager.warm_up(runners)
        nc = await connect(settings, stop)
        if nc is None:
            return
        connection.append(nc)
        await worker.subscribe(nc)
        log.info("inference worker serving %s.* (queue %s)", worker.prefix, contract.QUEUE_GROUP)
        await stop.wait()
        await worker.stop()
        with contextlib.suppress(Exception):
            await nc.drain()
    finally:
        await web_runner.cleanup()
        await ai.aclose()
        await pool.close()


def main(settings: Settings) -> None:
    """The process: uvloop, JSON logs, SIGTERM/SIGINT stop it gracefully."""
    import uvloop

    setup_logging(settings, service=f"{settings.otel_service_name}-{INFERENCE}")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run(settings, stop)

    uvloop.run(serve())
