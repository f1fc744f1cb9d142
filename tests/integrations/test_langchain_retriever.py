"""SimCSERetriever: LangChain's standard retriever suite, hybrid results, save / load, LCEL."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from langchain_core.runnables import RunnablePassthrough  # noqa: E402
from langchain_tests.integration_tests import RetrieversIntegrationTests  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from langchain_simcse import SimCSEEmbeddings, SimCSERetriever  # noqa: E402
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever  # noqa: E402
from simcse_rag.schema import Passage  # noqa: E402


def _documents(corpus) -> list[Document]:
    return [Document(page_content=t, metadata=m, id=i) for i, t, m in corpus]


@pytest.fixture
def retriever(encoder, corpus) -> SimCSERetriever:
    return SimCSERetriever.from_documents(  # RRF: some tests compute its scores by hand
        _documents(corpus),
        embeddings=SimCSEEmbeddings(encoder=encoder),
        k=3,
        config=HybridConfig(fusion="rrf"),
    )


class TestSimCSERetrieverStandard(RetrieversIntegrationTests):
    index: HybridRetriever

    @pytest.fixture(autouse=True)
    def _index(self, encoder, corpus) -> None:
        passages = [Passage(id=i, text=t, metadata=m) for i, t, m in corpus]
        type(self).index = HybridRetriever.from_passages(passages, encoder)

    @property
    def retriever_constructor(self) -> type[SimCSERetriever]:
        return SimCSERetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": self.index, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "fever in children"


def test_documents_carry_id_metadata_fused_score_and_source_ranks(
    retriever, encoder, corpus
) -> None:
    query = "儿童发烧超过三天应该去医院检查。"
    docs = retriever.invoke(query)
    expected = retriever.index.search(query, k=3, mode="hybrid", candidates=100)
    assert [d.id for d in docs] == [h.id for h in expected]
    assert docs[0].id == "med-3"  # exact text: top in both dense and BM25
    texts = {i: t for i, t, _ in corpus}
    for rank, (doc, hit) in enumerate(zip(docs, expected, strict=True), start=1):
        assert doc.page_content == texts[doc.id]
        assert doc.metadata["domain"] == dict((i, m) for i, _, m in corpus)[doc.id]["domain"]
        assert doc.metadata["score"] == pytest.approx(hit.score)
        assert doc.metadata["rank"] == rank
        assert doc.metadata["sources"] == {
            name: {"rank": s.rank, "score": pytest.approx(s.score)}
            for name, s in hit.sources.items()
        }
    top = docs[0].metadata
    assert top["sources"]["dense"]["rank"] == 1
    assert top["sources"]["bm25"]["rank"] == 1
    assert top["score"] == pytest.approx(2 / 61)  # 1-based RRF, k=60, unit weights


def test_invoke_k_and_mode_override_the_fields(retriever) -> None:
    assert len(retriever.invoke("interest rate")) == 3
    assert len(retriever.invoke("interest rate", k=1)) == 1
    bm25 = retriever.invoke("贷款利率", mode="bm25", k=5)
    assert bm25[0].id == "fin-3"
    assert set(bm25[0].metadata["sources"]) == {"bm25"}
    dense = retriever.invoke("interest rate", mode="dense")
    assert all(set(d.metadata["sources"]) == {"dense"} for d in dense)


def test_chinese_query_is_tokenized_for_bm25(retriever) -> None:
    docs = retriever.invoke("发烧", mode="bm25")
    assert [d.id for d in docs] == ["med-3"]  # only that passage contains the word


def test_k_larger_than_corpus_returns_what_exists(retriever, corpus) -> None:
    docs = retriever.invoke("rate", k=100)
    assert len(docs) == len(corpus)
    assert len({d.id for d in docs}) == len(corpus)


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_returns_empty_list(retriever, query) -> None:
    assert retriever.invoke(query) == []


async def test_ainvoke_honours_k(retriever) -> None:
    docs = await retriever.ainvoke("loan interest", k=2)
    assert [d.id for d in docs] == [d.id for d in retriever.invoke("loan interest", k=2)]


def test_bad_k_and_mode_are_rejected(retriever, encoder) -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        retriever.invoke("x", k=0)
    with pytest.raises(ValueError, match="Unknown mode"):
        retriever.invoke("x", mode="sparse")
    with pytest.raises(ValidationError):
        SimCSERetriever(index=retriever.index, k=0)
    with pytest.raises(ValidationError, match="top_k"):
        SimCSERetriever(index=retriever.index, top_k=3)


def test_from_texts_keeps_ids_and_metadatas(encoder) -> None:
    r = SimCSERetriever.from_texts(
        ["头痛怎么办", "cash flow statement"],
        SimCSEEmbeddings(encoder=encoder),
        metadatas=[{"src": "a"}, {"src": "b"}],
        ids=["x", "y"],
        k=5,
    )
    docs = r.invoke("头痛")
    assert [(d.id, d.metadata["src"]) for d in docs][0] == ("x", "a")
    with pytest.raises(ValueError, match="metadatas"):
        SimCSERetriever.from_texts(["a"], encoder=encoder, metadatas=[{}, {}])


def test_documents_without_ids_get_unique_ids(encoder) -> None:
    r = SimCSERetriever.from_documents(
        [Document(page_content="same"), Document(page_content="same")], encoder=encoder
    )
    docs = r.invoke("same", k=5)
    assert len(docs) == 2
    assert docs[0].id != docs[1].id


def test_add_and_delete_documents(retriever) -> None:
    retriever.add_documents([Document(page_content="哮喘儿童的用药指南", id="med-5")])
    assert retriever.invoke("哮喘", mode="bm25")[0].id == "med-5"
    assert retriever.delete(["med-5"]) == 1
    assert all(d.id != "med-5" for d in retriever.invoke("哮喘", k=100))


def test_other_embeddings_are_rejected_with_a_hint(corpus) -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    with pytest.raises(TypeError, match="SimCSEEmbeddings"):
        SimCSERetriever.from_documents(_documents(corpus), DeterministicFakeEmbedding(size=8))


def test_save_and_load_round_trip(retriever, encoder, tmp_path) -> None:
    retriever.k = 5
    retriever.mode = "dense"
    folder = retriever.save(tmp_path / "lc-index")
    settings = json.loads((folder / "retriever.json").read_text(encoding="utf-8"))
    assert settings["k"] == 5 and settings["mode"] == "dense"
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pickle"))
    loaded = SimCSERetriever.load(folder, SimCSEEmbeddings(encoder=encoder))
    assert (loaded.k, loaded.mode) == (5, "dense")
    for query in ["fever", "银行贷款", "insulin"]:
        before = retriever.invoke(query)
        after = loaded.invoke(query)
        assert [(d.id, d.page_content, d.metadata) for d in after] == [
            (d.id, d.page_content, d.metadata) for d in before
        ]
    overridden = SimCSERetriever.load(folder, encoder=encoder, k=1, mode="hybrid")
    assert len(overridden.invoke("fever")) == 1


def test_load_reads_a_bare_core_index(retriever, encoder, tmp_path) -> None:
    retriever.index.save(tmp_path / "core-index")
    loaded = SimCSERetriever.load(tmp_path / "core-index", encoder=encoder, k=3)
    assert [d.id for d in loaded.invoke("loan")] == [d.id for d in retriever.invoke("loan")]


def test_load_without_a_model_uses_the_one_named_in_the_index(model_dir, tmp_path, corpus) -> None:
    # The index records the model path; loading it back needs no embeddings argument.
    r = SimCSERetriever.from_documents(
        _documents(corpus), SimCSEEmbeddings(model_name_or_path=str(model_dir), device="cpu")
    )
    loaded = SimCSERetriever.load(r.save(tmp_path / "idx"))
    assert loaded.index.encoder.name_or_path == str(model_dir)
    assert [d.id for d in loaded.invoke("fever")] == [d.id for d in r.invoke("fever")]


def test_lcel_rag_chain_with_the_hybrid_retriever(retriever) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("human", "Context:\n{context}\n\nQuestion: {question}")]
    )

    def fmt(docs: list[Document]) -> str:
        return "\n".join(f"[{d.id}] {d.page_content}" for d in docs)

    chain = (
        {"context": retriever | fmt, "question": RunnablePassthrough()}
        | prompt
        | ParrotFakeChatModel()
        | StrOutputParser()
    )
    question = "银行本季度上调了贷款利率。"
    answer = chain.invoke(question)
    docs = retriever.invoke(question)
    assert docs[0].id == "fin-3"
    assert f"Context:\n{fmt(docs)}\n\nQuestion: {question}" in answer
