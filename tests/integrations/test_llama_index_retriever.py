"""HybridRRFRetriever: our hybrid index as a LlamaIndex retriever, and weighted RRF over others."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import VectorStoreIndex  # noqa: E402
from llama_index.core.base.base_retriever import BaseRetriever  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import (  # noqa: E402
    Document,
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)

from llama_index_simcse import HybridRRFRetriever, SimCSEEmbedding  # noqa: E402
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever  # noqa: E402


@pytest.fixture
def embed_model(encoder) -> SimCSEEmbedding:
    return SimCSEEmbedding(encoder=encoder)


@pytest.fixture
def nodes(corpus) -> list[TextNode]:
    return [
        TextNode(
            id_=i,
            text=t,
            metadata=m,
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc-{i[:3]}")},
        )
        for i, t, m in corpus
    ]


@pytest.fixture
def hybrid(nodes, embed_model) -> HybridRRFRetriever:
    return HybridRRFRetriever.from_nodes(  # RRF: some tests compute its scores by hand
        nodes, embed_model=embed_model, similarity_top_k=3, config=HybridConfig(fusion="rrf")
    )


class _FixedRetriever(BaseRetriever):
    """A retriever that returns a fixed ranking (as a real keyword or vector store would)."""

    def __init__(self, ranking: list[tuple[str, float | None]]) -> None:
        self._ranking = ranking
        super().__init__()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [
            NodeWithScore(node=TextNode(id_=i, text=f"text {i}"), score=s) for i, s in self._ranking
        ]


# ---------------------------------------------------------------- mode (a): our hybrid index
def test_from_nodes_returns_the_original_nodes_with_fused_scores(hybrid, nodes) -> None:
    original = {n.node_id: n for n in nodes}["med-3"]
    query = original.get_content(metadata_mode=MetadataMode.EMBED)  # what LlamaIndex indexes
    results = hybrid.retrieve(query)
    expected = hybrid.index.search(query, k=3)
    assert [r.node.node_id for r in results] == [h.id for h in expected]
    assert [r.score for r in results] == pytest.approx([h.score for h in expected])
    top = results[0]
    assert top.node.node_id == "med-3"
    assert top.score == pytest.approx(2 / 61)  # rank 1 in dense and BM25, k=60
    assert isinstance(top.node, TextNode)
    assert top.node.text == original.text
    assert top.node.metadata == original.metadata
    assert top.node.ref_doc_id == "doc-med"


def test_indexes_what_llama_index_embeds(nodes, embed_model) -> None:
    node = TextNode(id_="x", text="plain body", metadata={"title": "胰岛素 guide"})
    r = HybridRRFRetriever.from_nodes([node, *nodes], embed_model=embed_model, mode="bm25")
    # The title lives in metadata; LlamaIndex embeds it, so BM25 finds it too.
    assert r.retrieve("胰岛素 guide")[0].node.node_id == "x"
    assert r.retrieve("胰岛素 guide")[0].node.text == "plain body"


def test_chinese_bm25_mode(hybrid) -> None:
    hybrid.mode = "bm25"
    assert [r.node.node_id for r in hybrid.retrieve("贷款利率")][0] == "fin-3"
    assert [r.node.node_id for r in hybrid.retrieve("发烧")] == ["med-3"]


def test_top_k_larger_than_corpus_returns_what_exists(nodes, embed_model) -> None:
    r = HybridRRFRetriever.from_nodes(nodes, embed_model=embed_model, similarity_top_k=50)
    results = r.retrieve("interest rate")
    assert len(results) == len(nodes)
    assert len({n.node.node_id for n in results}) == len(nodes)


@pytest.mark.parametrize("query", ["", "  "])
def test_empty_query_returns_empty_list(hybrid, query) -> None:
    assert hybrid.retrieve(query) == []


async def test_aretrieve_matches_retrieve(hybrid) -> None:
    sync = hybrid.retrieve("loan interest rate")
    result = await hybrid.aretrieve("loan interest rate")
    assert [(n.node.node_id, n.score) for n in result] == [(n.node.node_id, n.score) for n in sync]


def test_persist_and_load_round_trip(hybrid, embed_model, tmp_path) -> None:
    hybrid.similarity_top_k = 5
    folder = hybrid.persist(tmp_path / "li-index")
    settings = json.loads((folder / "retriever.json").read_text(encoding="utf-8"))
    assert settings["k"] == 5 and settings["mode"] == "hybrid"
    loaded = HybridRRFRetriever.from_persist_dir(folder, embed_model=embed_model)
    assert loaded.similarity_top_k == 5
    for query in ["fever", "银行贷款", "insulin dose"]:
        before = hybrid.retrieve(query)
        after = loaded.retrieve(query)
        assert [(n.node.node_id, n.node.text, n.node.metadata, n.score) for n in after] == [
            (n.node.node_id, n.node.text, n.node.metadata, n.score) for n in before
        ]
    assert (
        len(
            HybridRRFRetriever.from_persist_dir(
                folder, encoder=embed_model.encoder, similarity_top_k=1
            ).retrieve("fever")
        )
        == 1
    )


def test_loads_an_index_saved_by_the_langchain_adapter(corpus, encoder, tmp_path) -> None:
    lc = pytest.importorskip("langchain_simcse")
    from langchain_core.documents import Document as LCDocument

    docs = [LCDocument(page_content=t, metadata=m, id=i) for i, t, m in corpus]
    lc_retriever = lc.SimCSERetriever.from_documents(docs, encoder=encoder, k=2, mode="dense")
    folder = lc_retriever.save(tmp_path / "shared")
    r = HybridRRFRetriever.from_persist_dir(folder, encoder=encoder)
    assert (r.similarity_top_k, r.mode) == (2, "dense")
    results = r.retrieve("Fever in children above 38.5 degrees needs a doctor.")
    assert [n.node.node_id for n in results] == [
        d.id for d in lc_retriever.invoke("Fever in children above 38.5 degrees needs a doctor.")
    ]
    assert results[0].node.metadata == {"domain": "medical"}


def test_query_engine_with_mock_llm_gets_the_source_nodes(hybrid) -> None:
    engine = RetrieverQueryEngine.from_args(hybrid, llm=MockLLM())
    question = "银行本季度上调了贷款利率。"
    response = engine.query(question)
    expected = hybrid.retrieve(question)
    assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in expected]
    assert response.source_nodes[0].node.node_id == "fin-3"
    # MockLLM echoes its prompt: the retrieved text reached the LLM.
    assert question in str(response)


def test_add_and_delete_nodes(hybrid, encoder) -> None:
    hybrid.mode = "bm25"
    assert hybrid.add_nodes([TextNode(id_="med-5", text="哮喘儿童的用药指南")]) == ["med-5"]
    assert hybrid.retrieve("哮喘")[0].node.node_id == "med-5"
    assert hybrid.delete(["med-5"]) == 1
    assert all(n.node.node_id != "med-5" for n in hybrid.retrieve("哮喘"))
    empty = HybridRRFRetriever(index=HybridRetriever(encoder), similarity_top_k=3)
    assert empty.retrieve("哮喘") == []
    empty.add_nodes([TextNode(id_="a", text="哮喘")])
    assert [n.node.node_id for n in empty.retrieve("哮喘")] == ["a"]


# ---------------------------------------------------------------- mode (b): fuse any retrievers
def test_weighted_rrf_over_retrievers_matches_hand_computation() -> None:
    first = _FixedRetriever([("a", 0.9), ("b", 0.5), ("c", 0.1)])
    second = _FixedRetriever([("c", 12.0), ("d", 3.0)])
    fused = HybridRRFRetriever(retrievers=[first, second], weights=[2.0, 1.0], similarity_top_k=10)
    results = fused.retrieve("anything")
    scores = {n.node.node_id: n.score for n in results}
    assert scores == pytest.approx({"a": 2 / 61, "b": 2 / 62, "c": 2 / 63 + 1 / 61, "d": 1 / 62})
    assert [n.node.node_id for n in results] == ["c", "a", "b", "d"]
    # The weight matters: favouring the second retriever changes the order.
    swapped = HybridRRFRetriever(retrievers=[first, second], weights=[1.0, 3.0])
    assert [n.node.node_id for n in swapped.retrieve("q")][:2] == ["c", "d"]


def test_fusion_keeps_each_retrievers_order_and_merges_by_node_id() -> None:
    # Distances (lower is better) in rank order: the returned order is trusted, not re-sorted.
    distances = _FixedRetriever([("x", 0.1), ("y", 0.7)])
    no_scores = _FixedRetriever([("y", None), ("x", None), ("x", None)])
    results = HybridRRFRetriever(retrievers=[distances, no_scores], similarity_top_k=1).retrieve(
        "q"
    )
    assert [n.node.node_id for n in results] == ["x"]  # tie on score, broken by best rank
    assert results[0].score == pytest.approx(1 / 61 + 1 / 62)


def test_fusion_does_not_mutate_the_wrapped_retrievers_nodes() -> None:
    kept = [NodeWithScore(node=TextNode(id_="n", text="t"), score=0.5)]

    class _Same(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            return kept

    HybridRRFRetriever(retrievers=[_Same(), _Same()]).retrieve("q")
    assert kept[0].score == 0.5


def test_fuses_real_llama_index_retrievers(nodes, embed_model) -> None:
    bm25_mod = pytest.importorskip("llama_index.retrievers.bm25")
    vector = VectorStoreIndex(nodes, embed_model=embed_model).as_retriever(similarity_top_k=4)
    bm25 = bm25_mod.BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=4)
    fused = HybridRRFRetriever(retrievers=[vector, bm25], weights=[1.0, 0.5], similarity_top_k=3)
    fin_1 = {n.node_id: n for n in nodes}["fin-1"]
    results = fused.retrieve(fin_1.get_content(metadata_mode=MetadataMode.EMBED))
    assert len(results) == 3
    assert results[0].node.node_id == "fin-1"
    assert results[0].score == pytest.approx(1 / 61 + 0.5 / 61)


async def test_async_fusion_matches_sync() -> None:
    first = _FixedRetriever([("a", 1.0), ("b", 0.5)])
    second = _FixedRetriever([("b", 1.0)])
    fused = HybridRRFRetriever(retrievers=[first, second])
    sync = [(n.node.node_id, n.score) for n in fused.retrieve("q")]
    assert [(n.node.node_id, n.score) for n in await fused.aretrieve("q")] == sync
    assert await fused.aretrieve("") == []


def test_empty_query_does_not_call_the_wrapped_retrievers() -> None:
    class _Exploding(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            raise AssertionError("called")

    assert HybridRRFRetriever(retrievers=[_Exploding()]).retrieve("") == []


def test_persist_of_fused_retrievers_is_refused(tmp_path) -> None:
    fused = HybridRRFRetriever(retrievers=[_FixedRetriever([("a", 1.0)])])
    with pytest.raises(ValueError, match="persist each of them"):
        fused.persist(tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_bad_arguments_are_rejected(hybrid, embed_model) -> None:
    one = _FixedRetriever([("a", 1.0)])
    with pytest.raises(ValueError, match="exactly one of retrievers"):
        HybridRRFRetriever()
    with pytest.raises(ValueError, match="exactly one of retrievers"):
        HybridRRFRetriever(retrievers=[one], index=hybrid.index)
    with pytest.raises(ValueError, match="2 weights for 1 retrievers"):
        HybridRRFRetriever(retrievers=[one], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        HybridRRFRetriever(retrievers=[one], weights=[-1.0])
    with pytest.raises(ValueError, match="rrf_k"):
        HybridRRFRetriever(retrievers=[one], rrf_k=-1)
    with pytest.raises(ValueError, match="similarity_top_k"):
        HybridRRFRetriever(retrievers=[one], similarity_top_k=0)
    with pytest.raises(TypeError, match="retrievers\\[0\\]"):
        HybridRRFRetriever(retrievers=["not a retriever"])
    with pytest.raises(ValueError, match="mode"):
        HybridRRFRetriever.from_nodes(
            [TextNode(id_="a", text="b")], embed_model=embed_model, mode="x"
        )
    with pytest.raises(TypeError, match="SimCSEEmbedding"):
        HybridRRFRetriever.from_nodes([Document(text="b")], embed_model=object())


def test_relative_score_fusion_over_retrievers_matches_hand_computation() -> None:
    first = _FixedRetriever([("a", 0.9), ("b", 0.5), ("c", 0.1)])
    second = _FixedRetriever([("c", 12.0), ("d", 2.0), ("e", 7.0)])
    fused = HybridRRFRetriever(
        retrievers=[first, second], weights=[2.0, 1.0], fusion="relative_score"
    )
    scores = {n.node.node_id: n.score for n in fused.retrieve("q")}
    # min-max per retriever: first a 1, b 0.5, c 0; second c 1, d 0, e 0.5; then weighted sum
    assert scores == pytest.approx({"a": 2.0, "b": 1.0, "c": 1.0, "d": 0.0, "e": 0.5})
    dist = HybridRRFRetriever(retrievers=[first, second], fusion="dist_based")
    assert [n.node.node_id for n in dist.retrieve("q")][0] in {"a", "c"}
    with pytest.raises(ValueError, match="without a score.*fusion='rrf'"):
        HybridRRFRetriever(
            retrievers=[_FixedRetriever([("x", None)])], fusion="relative_score"
        ).retrieve("q")


def test_fusion_option_errors(hybrid) -> None:
    one = _FixedRetriever([("a", 1.0)])
    with pytest.raises(ValueError, match="fusion 'sum' unknown"):
        HybridRRFRetriever(retrievers=[one], fusion="sum")
    with pytest.raises(ValueError, match=r"HybridConfig\(fusion='dist_based'\)"):
        HybridRRFRetriever(index=hybrid.index, fusion="dist_based")
