"""MicroBatcher: concurrent async searches gathered into search_batch calls, never mixed."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from simcse_rag.index.filters import parse_filter
from simcse_rag.index.hybrid import HybridRetriever
from simcse_rag.index.micro_batch import MicroBatcher, shared_batcher
from simcse_rag.schema import Passage

WORDS = ["fever", "child", "cough", "tax", "loan", "bank", "rate", "insulin", "dose", "rash"]
QUERIES = ["child fever", "bank loan rate", "insulin dose", "rash cough", "tax rate", "  "]
FILTERS = [None, {"tenant": 1}, {"tenant": {"$in": [0, 2]}}, {"year": {"$gte": 2003}}]


@pytest.fixture(scope="module")
def retriever(tiny_encoder: Any) -> HybridRetriever:
    passages = [
        Passage(
            f"p{i}",
            " ".join(WORDS[(i * j + j) % len(WORDS)] for j in range(1, 5)),
            {"tenant": i % 3, "year": 2000 + i % 6},
        )
        for i in range(40)
    ]
    return HybridRetriever.from_passages(passages, tiny_encoder)


class Recorder:
    """Wraps ``search_batch``: records each call's queries and filter, optionally slowed."""

    def __init__(self, retriever: HybridRetriever, delay: float = 0.0) -> None:
        self.retriever, self.delay = retriever, delay
        self.calls: list[tuple[list[str], Any, float]] = []
        self._lock = threading.Lock()

    def search_batch(self, queries: list[str], **kwargs: Any) -> Any:
        with self._lock:
            self.calls.append((list(queries), kwargs.get("filter"), time.perf_counter()))
        time.sleep(self.delay)
        return self.retriever.search_batch(queries, **kwargs)


def _dump(hits: list[Any]) -> list[tuple[str, int, float]]:
    return [(h.id, h.rank, round(h.score, 6)) for h in hits]


async def test_concurrent_results_equal_sequential_search_and_filters_never_mix(
    retriever: HybridRetriever,
) -> None:
    recorder = Recorder(retriever, delay=0.05)
    batcher = MicroBatcher(recorder, max_in_flight=1)
    requests = [
        (q, {"k": k, "mode": mode, "filter": flt})
        for q in QUERIES
        for k in (2, 5)
        for mode in ("hybrid", "bm25")
        for flt in FILTERS
    ]
    results = await asyncio.gather(*(batcher.search(q, **kw) for q, kw in requests))
    for (query, kwargs), hits in zip(requests, results, strict=True):
        assert _dump(hits) == _dump(retriever.search(query, **kwargs)), (query, kwargs)
        if kwargs["filter"] is not None:
            flt = parse_filter(kwargs["filter"])
            assert all(flt.matches(retriever.get(h.id).metadata) for h in hits)
    assert len(recorder.calls) < len(requests)  # requests were gathered
    assert max(len(queries) for queries, _, _ in recorder.calls) > 1


async def test_a_request_to_an_idle_batcher_leaves_at_once(
    retriever: HybridRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No timer: the lone request's batch is handed to the executor on the loop's next turn.
    Counted in loop turns, not seconds, so a loaded machine cannot make it fail."""
    recorder = Recorder(retriever)
    batcher = MicroBatcher(recorder)
    loop = asyncio.get_running_loop()
    submitted: list[Any] = []
    real = loop.run_in_executor

    def spy(executor: Any, func: Any, *args: Any) -> Any:
        submitted.append(func)
        return real(executor, func, *args)

    monkeypatch.setattr(loop, "run_in_executor", spy)
    request = asyncio.ensure_future(batcher.search("child fever", k=3))
    await asyncio.sleep(0)  # the request queues itself and schedules the flush
    await asyncio.sleep(0)  # the flush's turn
    assert len(submitted) == 1
    hits = await request
    assert _dump(hits) == _dump(retriever.search("child fever", k=3))


async def test_requests_wait_only_for_a_running_batch(retriever: HybridRetriever) -> None:
    recorder = Recorder(retriever, delay=0.2)
    batcher = MicroBatcher(recorder, max_batch=4, max_in_flight=1)
    first = asyncio.ensure_future(batcher.search("child fever", k=3))
    await asyncio.sleep(0.05)  # the first batch is running
    rest = [asyncio.ensure_future(batcher.search(q, k=3)) for q in QUERIES * 2]
    await asyncio.gather(first, *rest)
    sizes = [len(queries) for queries, _, _ in recorder.calls]
    assert sizes == [1, 4, 4, 4]  # the waiting twelve left in batches of max_batch


async def test_an_error_reaches_only_its_own_callers(retriever: HybridRetriever) -> None:
    recorder = Recorder(retriever, delay=0.05)

    class FailingBm25:
        def search_batch(self, queries: list[str], **kwargs: Any) -> Any:
            if kwargs["mode"] == "bm25":
                raise RuntimeError("bm25 leg failed")
            return recorder.search_batch(queries, **kwargs)

    batcher = MicroBatcher(FailingBm25(), max_in_flight=1)
    calls = [
        batcher.search("child fever", k=3),
        batcher.search("tax rate", k=3, mode="bm25"),
        batcher.search("insulin", k=3, filter={"tenant": {"$gt": "abc"}}),  # bad filter
        batcher.search("bank loan", k=3),
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert _dump(results[0]) == _dump(retriever.search("child fever", k=3))
    assert isinstance(results[1], RuntimeError)
    assert isinstance(results[2], ValueError)
    assert _dump(results[3]) == _dump(retriever.search("bank loan", k=3))


async def test_a_cancelled_request_is_not_searched(retriever: HybridRetriever) -> None:
    recorder = Recorder(retriever, delay=0.2)
    batcher = MicroBatcher(recorder, max_in_flight=1)
    first = asyncio.ensure_future(batcher.search("child fever", k=3))
    await asyncio.sleep(0.05)
    doomed = asyncio.ensure_future(batcher.search("tax rate", k=3))
    kept = asyncio.ensure_future(batcher.search("insulin dose", k=3))
    await asyncio.sleep(0)
    doomed.cancel()
    await asyncio.gather(first, kept)
    assert doomed.cancelled()
    assert [queries for queries, _, _ in recorder.calls] == [["child fever"], ["insulin dose"]]


async def test_bad_arguments_raise_to_the_caller(retriever: HybridRetriever) -> None:
    batcher = MicroBatcher(retriever)
    with pytest.raises(ValueError, match="k"):
        await batcher.search("fever", k=0)
    with pytest.raises(ValueError, match="mode"):
        await batcher.search("fever", mode="sparse")
    with pytest.raises(TypeError, match="query must be a str"):
        await batcher.search(["fever"])  # type: ignore[arg-type]


def test_each_index_has_one_shared_batcher(retriever: HybridRetriever, tiny_encoder: Any) -> None:
    other = HybridRetriever.from_passages([Passage("x", "fever")], tiny_encoder)
    assert shared_batcher(retriever) is shared_batcher(retriever)
    assert shared_batcher(other) is not shared_batcher(retriever)


def test_batchers_in_two_event_loops_do_not_share_requests(retriever: HybridRetriever) -> None:
    batcher = MicroBatcher(retriever)
    expected = _dump(retriever.search("child fever", k=3))
    results: list[Any] = []

    def run() -> None:
        results.append(_dump(asyncio.run(batcher.search("child fever", k=3))))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4
