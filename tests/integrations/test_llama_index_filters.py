"""HybridRRFRetriever with LlamaIndex MetadataFilters, and aretrieve off the event loop."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.schema import TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    ExactMatchFilter,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from llama_index_simcse import HybridRRFRetriever, SimCSEEmbedding  # noqa: E402
from llama_index_simcse.filters import to_filter  # noqa: E402
from tests.integrations.event_loop import (  # noqa: E402
    record_batches,
    slow_down_search,
    ticks_while,
)

F, Op = MetadataFilter, FilterOperator


@pytest.fixture
def retriever(encoder, corpus) -> HybridRRFRetriever:
    nodes = [TextNode(id_=i, text=t, metadata={**m, "n": n}) for n, (i, t, m) in enumerate(corpus)]
    embed = SimCSEEmbedding(encoder=encoder)
    return HybridRRFRetriever.from_nodes(nodes, embed_model=embed, similarity_top_k=10)


def ids(nodes) -> set[str]:
    return {n.node.node_id for n in nodes}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (MetadataFilters(filters=[F(key="domain", value="finance")]), {"fin-1", "fin-2", "fin-3"}),
        (
            MetadataFilters(filters=[ExactMatchFilter(key="lang", value="zh")]),
            {"med-3", "med-4", "fin-3"},
        ),
        (MetadataFilters(filters=[F(key="n", value=5, operator=Op.GTE)]), {"fin-2", "fin-3"}),
        (MetadataFilters(filters=[F(key="n", value=1, operator=Op.LT)]), {"med-1"}),
        (MetadataFilters(filters=[F(key="n", value=5, operator=Op.GT)]), {"fin-3"}),
        (MetadataFilters(filters=[F(key="n", value=0, operator=Op.LTE)]), {"med-1"}),
        (MetadataFilters(filters=[F(key="n", value=[0, 6], operator=Op.IN)]), {"med-1", "fin-3"}),
        (
            MetadataFilters(
                filters=[
                    F(key="domain", value="medical"),
                    F(key="n", value=[0, 1, 2], operator=Op.NIN),
                    F(key="lang", value="en", operator=Op.NE),  # missing lang never matches
                ]
            ),
            {"med-4"},
        ),
        (
            MetadataFilters(
                filters=[
                    F(key="n", value=0),
                    MetadataFilters(
                        filters=[F(key="domain", value="finance"), F(key="lang", value="zh")],
                        condition=FilterCondition.AND,
                    ),
                ],
                condition=FilterCondition.OR,
            ),
            {"med-1", "fin-3"},
        ),
    ],
)
def test_metadata_filters_map_and_apply(retriever, filters, expected) -> None:
    retriever.filters = filters
    assert ids(retriever.retrieve("fever loan insulin rate")) == expected


def test_empty_metadata_filters_mean_no_filter(retriever, corpus) -> None:
    assert to_filter(MetadataFilters(filters=[])) is None
    retriever.filters = MetadataFilters(filters=[])
    assert len(retriever.retrieve("fever")) == len(corpus)


@pytest.mark.parametrize(
    "operator", [Op.TEXT_MATCH, Op.TEXT_MATCH_INSENSITIVE, Op.CONTAINS, Op.ANY, Op.ALL, Op.IS_EMPTY]
)
def test_unmappable_operators_are_named(retriever, encoder, corpus, operator) -> None:
    value = ["a"] if operator in (Op.ANY, Op.ALL) else "a"
    filters = MetadataFilters(
        filters=[F(key="domain", value="medical"), F(key="lang", value=value, operator=operator)]
    )
    with pytest.raises(
        ValueError, match=rf"filters\.filters\[1\] \(key 'lang'\): operator {operator.name}"
    ):
        retriever.filters = filters
    with pytest.raises(ValueError, match=operator.name):
        HybridRRFRetriever(index=retriever.index, filters=filters)


def test_not_condition_and_bad_values_are_errors(retriever) -> None:
    not_filter = MetadataFilters(filters=[F(key="n", value=1)], condition=FilterCondition.NOT)
    with pytest.raises(ValueError, match="condition NOT"):
        retriever.filters = not_filter
    with pytest.raises(ValueError, match=r'\["n"\]\["\$gt"\]'):
        retriever.filters = MetadataFilters(filters=[F(key="n", value="abc", operator=Op.GT)])
    with pytest.raises(ValueError, match="index="):
        HybridRRFRetriever(
            retrievers=[retriever], filters=MetadataFilters(filters=[F(key="n", value=1)])
        )


async def test_aretrieve_filters_and_keeps_the_loop_running(retriever, monkeypatch) -> None:
    retriever.filters = MetadataFilters(filters=[F(key="domain", value="medical")])
    slow_down_search(monkeypatch, retriever.index)
    nodes, ticks = await ticks_while(retriever.aretrieve("fever"))
    assert ids(nodes) == {"med-1", "med-2", "med-3", "med-4"}
    assert ticks >= 10  # a blocked loop would tick at most once


def _dump(results) -> list[list[tuple[str, float]]]:
    return [[(n.node.node_id, n.score) for n in nodes] for nodes in results]


async def test_concurrent_aretrieve_is_batched_and_equals_retrieve(
    retriever, corpus, monkeypatch
) -> None:
    """Retrievers with different filters over one index share its batcher, and each call still
    gets exactly its own filter's result."""
    medical = HybridRRFRetriever(
        index=retriever.index,
        similarity_top_k=10,
        filters=MetadataFilters(filters=[F(key="domain", value="medical")]),
    )
    calls = [(r, q) for r in (retriever, medical) for q in ("fever", "loan", "insulin")] * 3
    expected = [r.retrieve(q) for r, q in calls]
    sizes = record_batches(monkeypatch, retriever.index)
    got = await asyncio.gather(*(r.aretrieve(q) for r, q in calls))
    assert _dump(got) == _dump(expected)
    assert max(sizes) > 1 and sum(sizes) == len(calls)
