"""AI benchmark: captions/s, moderation images/s, the batching speedup, and the latency
moderation adds to a generation. Uses the real packaged models through the model manager.

    .venv/bin/python -m benchmarks.ai [--rounds 3] [--captions 8] [--memes 64]   (BENCH_QUICK=1)

Batching speedup: N items run one at a time, each as a batch of one straight on the model's
inference thread (`ModelManager.infer_alone`: no micro-batcher, so no AI_MAX_WAIT_MS wait),
against the same N submitted concurrently through the micro-batcher (`infer_many`, up to
AI_MAX_BATCH per model call). Both sides prepare inputs (image decoding) the same way, so the
ratio is what batching alone buys.
Moderation latency: text moderation + sentiment before the render and image moderation after
it, as streams/moderation.py does, with as many concurrent agents as the render worker runs
(WORKER_THREADS * 2), over real rendered memes; p50/p95/p99 per meme, in both image modes:
MODERATION_IMAGE_EVERY_MEME=false (the default: a catalogue template's image is scored once
and its verdict reused) and =true (every rendered image scored by Open-NSFW).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks._result import Result, emit
from domain.ai.captions import CaptionRequest
from domain.ai.manager import TaskRunner
from domain.ai.moderation import IMAGE, TEXT
from domain.ai.sentiment import SENTIMENT
from domain.ai.service import AIService
from domain.events import MemeRequested
from domain.rendering import RenderOptions, render_meme
from domain.settings import get_settings
from domain.templates import TemplateCatalog
from streams.moderation import ModerationStep

TOPICS = ["mondays", "unit tests", "coffee", "deadlines", "cats", "the weekend", "bugs", "rain"]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


async def speedup(
    ai: AIService,
    runner: TaskRunner[Any, Any],
    make_items: Callable[[str], Sequence[Any]],
    rounds: int,
) -> tuple[float, float]:
    """(items/s one at a time, items/s batched), best of `rounds`; fresh items every run, so
    no memo (the embedder keeps recent texts) flatters either side. One at a time is the model
    on a batch of one with no batching wait, so only the batched side pays for batching."""
    manager = ai.manager
    runs = iter(range(10**6))
    prefix = runner.task.value

    async def sequential() -> None:
        for item in make_items(f"{prefix} s{next(runs)}"):
            await manager.infer_alone(runner, item, timeout_s=600)  # raises if no model

    async def concurrent() -> None:
        items = make_items(f"{prefix} c{next(runs)}")
        answers = await manager.infer_many(runner, items, timeout_s=600)
        assert not any(a.heuristic for a in answers), f"{runner.task}: the model did not answer"

    n = len(make_items("probe"))
    # Interleaved, so a change in the machine's load between rounds hits both sides alike.
    one = batched = float("inf")
    for _ in range(rounds):
        one = min(one, await timed(sequential))
        batched = min(batched, await timed(concurrent))
    return n / one, n / batched


def meme_images(n: int) -> list[bytes]:
    catalog = TemplateCatalog.default()
    ids = [t.id for t in catalog.all() if not t.animated]
    out = []
    for i in range(n):
        template = catalog.get(ids[i % len(ids)])
        texts = [f"{TOPICS[i % len(TOPICS)]} {j}" for j in range(len(template.boxes))]
        rendered = render_meme(template.id, texts, RenderOptions(format="jpeg"))
        out.append(rendered.variants["medium"].data)
    return out


async def moderation_latency(
    step: ModerationStep, memes: int, agents: int
) -> tuple[list[float], float]:
    catalog = TemplateCatalog.default()
    templates = [t for t in catalog.all() if not t.animated]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(memes):
        queue.put_nowait(i)
    latencies: list[float] = []
    renders = {}
    for t in templates:  # render outside the timing: only moderation's share is measured
        texts = [f"{TOPICS[0]} {j}" for j in range(len(t.boxes))]
        renders[t.id] = (texts, render_meme(t.id, texts, RenderOptions(format="jpeg")))

    async def agent() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            template = templates[i % len(templates)]
            texts, rendered = renders[template.id]
            unique = [f"{t} #{i} {id(step)}" for t in texts]  # no embedding memo hits
            request = MemeRequested(meme_id=f"bench-{i}", template_id=template.id, texts=unique)
            started = time.perf_counter()
            checked = await step.check_request(request)
            await step.check_render(checked, rendered, template.id)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(agent() for _ in range(agents)))
    return latencies, memes / (time.perf_counter() - started)


async def main() -> None:
    quick = os.environ.get("BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1 if quick else 3)
    parser.add_argument("--captions", type=int, default=4 if quick else 8)
    parser.add_argument("--memes", type=int, default=32 if quick else 96)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    settings = get_settings().model_copy(update={"ai_model_size": "small"})
    ai = AIService(settings, TemplateCatalog.default())
    results: list[Result] = []
    print(
        f"cores: {os.cpu_count()}  torch threads: {settings.ai_torch_threads}  "
        f"max batch: {settings.ai_max_batch}  max wait: {settings.ai_max_wait_ms} ms"
    )
    started = time.perf_counter()
    sources = await ai.manager.warm_up([TEXT, IMAGE, SENTIMENT, ai.captions.runner], timeout_s=600)
    print(f"warm-up {time.perf_counter() - started:.1f} s: {sources}")

    images = meme_images(args.batch)
    one, batched = await speedup(ai, IMAGE, lambda _tag: images, args.rounds)
    figure = (
        f"one at a time {one:.1f} img/s, batched {batched:.1f} img/s, "
        f"speedup {batched / one:.2f}x at batch {args.batch}"
    )
    print(f"image moderation (Open-NSFW): {figure}")
    method = (
        f"{args.batch} rendered memes: each alone on the model thread vs all {args.batch} "
        "concurrently through the micro-batcher"
    )
    results.append(
        {
            "target": "ai_moderation_images",
            "value": round(batched, 1),
            "unit": "img/s",
            "figure": figure,
            "method": method,
        }
    )
    results.append(
        {
            "target": "ai_batching_speedup_images",
            "value": round(batched / one, 2),
            "unit": "x",
            "figure": f"{batched / one:.2f}x (target >= 3x)",
            "method": method,
        }
    )

    batch = args.batch

    def texts(tag: str) -> list[str]:
        return [
            f"When {TOPICS[i % len(TOPICS)]} hit different, {tag} part {i}" for i in range(batch)
        ]

    for name, runner in (("text_moderation", TEXT), ("sentiment", SENTIMENT)):
        one, batched = await speedup(ai, runner, texts, args.rounds)
        figure = (
            f"one at a time {one:.1f}/s, batched {batched:.1f}/s, "
            f"speedup {batched / one:.2f}x at batch {args.batch}"
        )
        print(f"{name} (MiniLM): {figure}")
        results.append(
            {
                "target": f"ai_batching_speedup_{name}",
                "value": round(batched / one, 2),
                "unit": "x",
                "figure": figure,
                "method": (
                    f"{args.batch} captions: each alone on the model thread vs all concurrently "
                    "through the micro-batcher"
                ),
            }
        )

    template = TemplateCatalog.default().get("drake")
    requests = [
        CaptionRequest.for_template(TOPICS[i % len(TOPICS)], template) for i in range(args.captions)
    ]
    one, batched = await speedup(ai, ai.captions.runner, lambda _tag: requests, 1)
    tokens = settings.ai_caption_tokens_per_box * 2
    figure = (
        f"one at a time {one:.2f}/s, batched {batched:.2f}/s "
        f"({args.captions} drake captions, <= {tokens} new tokens each)"
    )
    print(f"captions (SmolLM2-135M): {figure}")
    results.append(
        {
            "target": "ai_captions",
            "value": round(batched, 2),
            "unit": "captions/s",
            "figure": figure,
            "method": "greedy generation through the model manager",
        }
    )

    agents = settings.worker_threads * 2
    print(f"moderation added per generation ({args.memes} memes, {agents} agents):")
    for every_meme in (False, True):
        step = ModerationStep(ai, every_meme=every_meme)
        await step.warm_up()  # as the worker does at start: models loaded, templates scored
        latencies, rate = await moderation_latency(step, args.memes, agents)
        p50, p95, p99 = (percentile(latencies, q) * 1000 for q in (50, 95, 99))
        scope = "every rendered image scored" if every_meme else "template image scored once"
        setting = "true" if every_meme else "false (default)"
        mode = f"MODERATION_IMAGE_EVERY_MEME={setting}, {scope}"
        figure = (
            f"{mode}: p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms; "
            f"{rate:.1f} memes/s moderated"
        )
        print(f"  {figure}")
        key = "ai_moderation_latency_p95_every_image" if every_meme else "ai_moderation_latency_p95"
        results.append(
            {
                "target": key,
                "value": round(p95, 1),
                "unit": "ms",
                "figure": f"{figure} (target p95 < 300 ms)",
                "method": (
                    f"text and sentiment checks of {args.memes} rendered memes, then the image "
                    f"check ({scope}), {agents} concurrent agents"
                ),
            }
        )
    await ai.aclose()
    emit("ai", results)


if __name__ == "__main__":
    asyncio.run(main())
