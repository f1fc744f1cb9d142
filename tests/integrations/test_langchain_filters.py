"""SimCSERetriever filters (search_kwargs and per call) and async calls off the event loop."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from langchain_simcse import SimCSEEmbeddings, SimCSERetriever  # noqa: E402
from tests.integrations.event_loop import (  # noqa: E402
    record_batches,
    slow_down_search,
    ticks_while,
)


@pytest.fixture
def retriever(encoder, corpus) -> SimCSERetriever:
    docs = [Document(page_content=t, metadata=m, id=i) for i, t, m in corpus]
    return SimCSERetriever.from_documents(docs, embeddings=SimCSEEmbeddings(encoder=encoder), k=3)


def ids(docs) -> set[str]:
    return {d.id for d in docs}


def test_search_kwargs_filter_applies_to_every_call(retriever) -> None:
    retriever.search_kwargs = {"filter": {"domain": "finance"}, "k": 10}
    assert ids(retriever.invoke("fever in children")) == {"fin-1", "fin-2", "fin-3"}


def test_per_call_filter_and_it_narrows_the_configured_one(retriever) -> None:
    docs = retriever.invoke("fever", k=10, filter={"lang": "zh"})
    assert ids(docs) == {"med-3", "med-4", "fin-3"}
    retriever.search_kwargs = {"filter": {"domain": "medical"}}
    assert ids(retriever.invoke("fever", k=10, filter={"lang": "zh"})) == {"med-3", "med-4"}
    # a call cannot widen the configured filter: finance stays out
    assert ids(retriever.invoke("loan", k=10, filter={"domain": "finance"})) == set()


def test_langchain_style_list_filter(retriever) -> None:
    docs = retriever.invoke("rate", k=10, filter={"domain": ["finance"], "lang": {"$exists": True}})
    assert ids(docs) == {"fin-3"}


def test_bad_filters_are_one_clear_error(retriever) -> None:
    with pytest.raises(ValueError, match=r'filter\["year"\]\["\$gt"\]'):
        retriever.invoke("x", filter={"year": {"$gt": "abc"}})
    with pytest.raises(ValidationError, match="unknown operator"):
        SimCSERetriever(index=retriever.index, search_kwargs={"filter": {"a": {"$regex": "x"}}})
    with pytest.raises(ValidationError, match="unknown key"):
        SimCSERetriever(index=retriever.index, search_kwargs={"fetch_k": 20})


async def test_ainvoke_and_abatch_filter(retriever) -> None:
    docs = await retriever.ainvoke("fever", k=10, filter={"lang": "zh"})
    assert ids(docs) == {"med-3", "med-4", "fin-3"}
    retriever.search_kwargs = {"filter": {"domain": "medical"}, "k": 10}
    batches = await retriever.abatch(["fever", "loan", "insulin"])
    assert all(ids(b) == {"med-1", "med-2", "med-3", "med-4"} for b in batches)


async def test_event_loop_keeps_running_during_a_slow_search(retriever, monkeypatch) -> None:
    slow_down_search(monkeypatch, retriever.index)
    docs, ticks = await ticks_while(retriever.ainvoke("fever", filter={"domain": "medical"}))
    assert docs and all(d.metadata["domain"] == "medical" for d in docs)
    assert ticks >= 10  # a blocked loop would tick at most once


async def test_concurrent_ainvoke_is_batched_and_equals_invoke(retriever, monkeypatch) -> None:
    """Concurrent calls are searched together (micro-batching), yet each gets exactly what its
    own invoke gives: its own k and filter, never another call's."""
    calls = [
        ("fever", {"filter": {"lang": "zh"}, "k": 10}),
        ("loan", {}),
        ("fever", {"filter": {"domain": "medical"}, "k": 10}),
        ("insulin", {"k": 2}),
        ("loan rate", {"filter": {"lang": "zh"}, "k": 10}),
        ("child fever", {"filter": {"domain": "finance"}, "k": 10}),
    ] * 3
    expected = [retriever.invoke(q, **kw) for q, kw in calls]
    sizes = record_batches(monkeypatch, retriever.index)
    got = await asyncio.gather(*(retriever.ainvoke(q, **kw) for q, kw in calls))
    assert got == expected
    assert max(sizes) > 1 and sum(sizes) == len(calls)
