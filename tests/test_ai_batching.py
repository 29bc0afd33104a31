"""The micro-batcher and the heuristics: pure Python, no model and no ai extra needed."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Sequence

import pytest
from PIL import Image

from domain.ai import heuristics
from domain.ai.batching import BatcherClosed, MicroBatcher
from domain.ai.types import SENTIMENT_LABELS, Decision, Verdict


def _doubler(log: list[int]) -> MicroBatcher[int, int]:
    def run(items: Sequence[int]) -> list[int]:
        log.append(len(items))
        time.sleep(0.01)
        return [i * 2 for i in items]

    return MicroBatcher(run, max_batch=4, max_wait_s=0.05)


async def test_concurrent_items_share_batches_up_to_max_batch() -> None:
    sizes: list[int] = []
    batcher = _doubler(sizes)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    assert results == [i * 2 for i in range(10)]
    assert sum(sizes) == 10
    assert max(sizes) == 4
    assert len(sizes) == 3  # 4 + 4 + 2
    await batcher.close()


async def test_a_lone_item_waits_at_most_max_wait() -> None:
    sizes: list[int] = []
    batcher = _doubler(sizes)
    started = time.perf_counter()
    assert await batcher.submit(21) == 42
    assert time.perf_counter() - started < 0.5
    assert sizes == [1]
    await batcher.close()


async def test_item_errors_reach_only_their_caller() -> None:
    def run(items: Sequence[int]) -> list[int | BaseException]:
        return [ValueError(f"bad {i}") if i < 0 else i for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=8, max_wait_s=0.02)
    good, bad = await asyncio.gather(batcher.submit(1), batcher.submit(-1), return_exceptions=True)
    assert good == 1
    assert isinstance(bad, ValueError)
    await batcher.close()


async def test_a_failing_batch_fails_each_caller_and_the_batcher_goes_on() -> None:
    calls = 0

    def run(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("model crashed")
        return list(items)

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=8, max_wait_s=0.02)
    outcomes = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert await batcher.submit(3) == 3
    await batcher.close()


async def test_callers_that_gave_up_are_dropped_before_the_batch_runs() -> None:
    seen: list[int] = []
    gate = threading.Event()

    def run(items: Sequence[int]) -> list[int]:
        gate.wait(2)
        seen.extend(items)
        return list(items)

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=8, max_wait_s=0.0)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.05)  # batch [1] is running and blocked on the gate
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(batcher.submit(2), 0.05)
    third = asyncio.ensure_future(batcher.submit(3))
    await asyncio.sleep(0.01)
    gate.set()
    assert await first == 1
    assert await third == 3
    assert 2 not in seen
    await batcher.close()


async def test_closed_batcher_refuses_new_items() -> None:
    batcher = _doubler([])
    await batcher.close()
    with pytest.raises(BatcherClosed):
        await batcher.submit(1)


@pytest.mark.parametrize("boxes", [1, 2, 3, 4, 6])
def test_heuristic_caption_fills_every_box(boxes: int) -> None:
    caption = heuristics.caption("unit tests", boxes)
    assert len(caption.texts) == boxes
    assert all(isinstance(t, str) and t.strip() for t in caption.texts)
    assert caption == heuristics.caption("unit tests", boxes)  # stable for a topic


def test_heuristic_sentiment_labels() -> None:
    assert heuristics.sentiment("I love this, best day").label == "positive"
    assert heuristics.sentiment("everything is broken and I hate it").label == "negative"
    assert heuristics.sentiment("a table").label == "neutral"
    assert heuristics.sentiment("not good").label == "negative"
    for text in ("", "love", "hate", "???"):
        result = heuristics.sentiment(text)
        assert result.label in SENTIMENT_LABELS
        assert 0.0 <= result.score <= 1.0


def test_blocklist_matches_whole_words_only() -> None:
    assert heuristics.blocklist("go kill yourself")[0] == 1.0
    assert heuristics.blocklist("KYS")[1] == "self-harm incitement"
    assert heuristics.blocklist("skyscraper grape") == (0.0, None)  # no 'kys' / 'rape' inside
    assert heuristics.blocklist("writing tests, shipping memes") == (0.0, None)


def test_keyword_scores_rank_matching_documents_first() -> None:
    scores = heuristics.keyword_scores("late night thoughts", ["drake approves", "night thoughts"])
    assert scores[1] > scores[0]


def test_skin_score_is_capped_so_it_can_only_flag() -> None:
    skin = Image.new("RGB", (64, 64), (224, 172, 140))
    sky = Image.new("RGB", (64, 64), (40, 90, 200))
    assert heuristics.skin_score(skin) == heuristics.SKIN_SCORE_CAP
    assert heuristics.skin_score(sky) == 0.0


def test_dhash_survives_resize_and_recompression() -> None:
    image = Image.radial_gradient("L").convert("RGB").resize((300, 200))
    buffer = io.BytesIO()
    image.resize((150, 100)).save(buffer, format="JPEG", quality=60)
    again = Image.open(io.BytesIO(buffer.getvalue()))
    other = Image.linear_gradient("L").convert("RGB")
    same = heuristics.hash_similarity(heuristics.dhash(image), heuristics.dhash(again))
    different = heuristics.hash_similarity(heuristics.dhash(image), heuristics.dhash(other))
    assert same > 0.9
    assert same > different


def test_verdict_worse_prefers_the_stricter_decision() -> None:
    ok = Verdict(Decision.OK, 0.1, "clean")
    flagged = Verdict(Decision.FLAGGED, 0.5, "nsfw")
    rejected = Verdict(Decision.REJECTED, 0.95, "blocklist")
    assert ok.worse(flagged) is flagged
    assert rejected.worse(flagged) is rejected
    assert Verdict(Decision.OK, 0.2, "clean").worse(ok).score == 0.2


def test_onnx_sub_of_a_constant_becomes_an_add_of_its_negation() -> None:
    """So onnxruntime folds Open-NSFW's Sub/Mul/Add batch norms into the Conv weights; every
    field the rewrite does not know (here ir_version) passes through unchanged."""
    pytest.importorskip("google.protobuf")
    import numpy as np

    from domain.ai.backends import _onnx_subset, foldable_onnx

    model_class, _ = _onnx_subset()
    model = model_class()
    graph = model.graph
    mean = graph.initializer.add(name="mean", data_type=1, dims=[1, 2, 1, 1])
    mean.raw_data = np.array([0.5, -2.0], "<f4").tobytes()
    graph.initializer.add(name="listed", data_type=1, dims=[2], float_data=[1.0, 3.0])
    graph.initializer.add(name="shape", data_type=7, dims=[1], raw_data=b"\x01" + b"\x00" * 7)
    graph.node.add(op_type="Conv", input=["x", "w"], output=["c"])
    graph.node.add(op_type="Sub", input=["c", "mean"], output=["s1"])
    graph.node.add(op_type="Sub", input=["s1", "listed"], output=["s2"])
    graph.node.add(op_type="Sub", input=["s2", "mean"], output=["s3"])  # shares a negation
    graph.node.add(op_type="Sub", input=["n", "shape"], output=["i"])  # int64: left alone
    graph.node.add(op_type="Sub", input=["mean", "c"], output=["r"])  # constant first: alone
    ir_version = b"\x08\x08"  # field 1 (ir_version) = 8, unknown to the subset
    data, rewritten = foldable_onnx(ir_version + model.SerializeToString())

    assert rewritten == 3
    out = model_class()
    out.ParseFromString(data)
    assert [n.op_type for n in out.graph.node] == ["Conv", "Add", "Add", "Add", "Sub", "Sub"]
    tensors = {t.name: t for t in out.graph.initializer}
    assert out.graph.node[1].input[1] == out.graph.node[3].input[1] == "mean/negated"
    negated = np.frombuffer(tensors["mean/negated"].raw_data, "<f4")
    assert negated.tolist() == [-0.5, 2.0]
    assert list(tensors["mean/negated"].dims) == [1, 2, 1, 1]
    assert np.frombuffer(tensors["listed/negated"].raw_data, "<f4").tolist() == [-1.0, -3.0]
    assert np.frombuffer(tensors["mean"].raw_data, "<f4").tolist() == [0.5, -2.0]
    from google.protobuf.unknown_fields import UnknownFieldSet

    assert [(f.field_number, f.data) for f in UnknownFieldSet(out)] == [(1, 8)]
