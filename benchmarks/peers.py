"""The peer configurations of ``benchmarks/retrieval.py``: LangChain and LlamaIndex retrievers.

Issue #21's bar is *every* peer configuration, each framework's BM25, dense and hybrid:

* LangChain: ``BM25Retriever`` (rank-bm25), ``FAISS.as_retriever()`` and
  ``EnsembleRetriever([BM25Retriever, FAISS])`` (weighted RRF, c=60, equal weights);
* LlamaIndex: ``BM25Retriever`` (bm25s), the ``VectorStoreIndex`` retriever and
  ``QueryFusionRetriever([vector, BM25], num_queries=1)`` in its three fusion modes
  ``reciprocal_rerank``, ``relative_score`` and ``dist_based_score`` (a MockLLM: no LLM is
  called with one query).

Every configuration uses the frameworks' defaults except ``k`` (100 hits, for Recall@100), the
same all-MiniLM-L6-v2 vectors for the passages (from our embedding cache) and
sentence-transformers for the queries. With ``quality_only`` the queries are encoded once in a
batch and a LlamaIndex fusion reuses its two sub-retrievers' results per query (they are the same
objects either way), so the scores are the frameworks' own while the latency is not measured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: What a benchmark does with one system: ``measure(name, search, build_s)`` -> result row.
Measure = Callable[[str, Callable[[str], list[str]], float], dict[str, Any]]


class QueryVectors:
    """Query text -> unit vector: batch-encoded up front (quality runs) or one at a time."""

    def __init__(self, st: Any, queries: list[str] | None) -> None:
        self._st = st
        self._known: dict[str, list[float]] = {}
        if queries:
            vectors = st.encode(queries, batch_size=64, normalize_embeddings=True)
            self._known = dict(zip(queries, vectors.tolist(), strict=True))

    def __call__(self, text: str) -> list[float]:
        known = self._known.get(text)
        if known is not None:
            return known
        return self._st.encode(text, normalize_embeddings=True).tolist()


def run_langchain(
    data: Any, vectors: QueryVectors, cache: Any, k: int, measure: Measure
) -> list[dict[str, Any]]:
    """LangChain's BM25, FAISS and EnsembleRetriever rows."""
    import time

    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings

    try:
        from langchain_classic.retrievers import EnsembleRetriever
    except ImportError:  # older layouts
        from langchain.retrievers import EnsembleRetriever  # type: ignore[no-redef]

    class MiniLMEmbeddings(Embeddings):
        """LangChain Embeddings over the shared model (passages from the cache)."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            found, missing = cache.lookup(texts)
            if missing:
                raise ValueError(f"{len(missing)} passages are not in the embedding cache.")
            return found.tolist()

        def embed_query(self, text: str) -> list[float]:
            return vectors(text)

    texts = [p.text for p in data.corpus]
    ids = [p.id for p in data.corpus]
    docs = [Document(page_content=p.text, metadata={"id": p.id}, id=p.id) for p in data.corpus]
    emb = MiniLMEmbeddings()
    t0 = time.perf_counter()
    bm25 = BM25Retriever.from_documents(docs, k=k)
    bm25_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store = FAISS.from_embeddings(
        list(zip(texts, emb.embed_documents(texts), strict=True)),
        emb,
        metadatas=[{"id": i} for i in ids],
        ids=ids,
    )
    dense = store.as_retriever(search_kwargs={"k": k})
    dense_s = time.perf_counter() - t0
    ensemble = EnsembleRetriever(retrievers=[bm25, dense], weights=[0.5, 0.5], id_key="id")

    def searcher(retriever: Any) -> Callable[[str], list[str]]:
        return lambda q: [d.metadata["id"] for d in retriever.invoke(q)][:k]

    return [
        measure("LangChain BM25Retriever", searcher(bm25), bm25_s),
        measure("LangChain FAISS", searcher(dense), dense_s),
        measure("LangChain EnsembleRetriever", searcher(ensemble), bm25_s + dense_s),
    ]


def run_llamaindex(
    data: Any, vectors: QueryVectors, cache: Any, k: int, measure: Measure, quality_only: bool
) -> list[dict[str, Any]]:
    """LlamaIndex's BM25, vector and QueryFusionRetriever (three modes) rows."""
    import time

    from llama_index.core import VectorStoreIndex
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever

    class MiniLMEmbedding(BaseEmbedding):
        """LlamaIndex embedding over the shared model (passages from the cache)."""

        def _get_query_embedding(self, query: str) -> list[float]:
            return vectors(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            found, missing = cache.lookup(texts)
            if missing:
                raise ValueError(f"{len(missing)} passages are not in the embedding cache.")
            return found.tolist()

    class Memo(BaseRetriever):
        """A sub-retriever's results kept per query, so three fusion modes search once."""

        def __init__(self, inner: BaseRetriever) -> None:
            super().__init__()
            self._inner = inner
            self._seen: dict[str, list[Any]] = {}

        def _retrieve(self, query_bundle: Any) -> list[Any]:
            text = query_bundle.query_str
            if text not in self._seen:
                self._seen[text] = self._inner.retrieve(query_bundle)
            return [n.model_copy() for n in self._seen[text]]  # fusion rescales in place

    emb = MiniLMEmbedding(model_name="all-MiniLM-L6-v2", embed_batch_size=256)
    nodes = [TextNode(id_=p.id, text=p.text) for p in data.corpus]
    t0 = time.perf_counter()
    vector = VectorStoreIndex(nodes, embed_model=emb, show_progress=False).as_retriever(
        similarity_top_k=k
    )
    vector_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=k)
    bm25_s = time.perf_counter() - t0
    subs: list[Any] = [Memo(vector), Memo(bm25)] if quality_only else [vector, bm25]

    def searcher(retriever: Any) -> Callable[[str], list[str]]:
        return lambda q: [n.node.node_id for n in retriever.retrieve(q)][:k]

    rows = [
        measure("LlamaIndex BM25Retriever", searcher(subs[1]), bm25_s),
        measure("LlamaIndex vector retriever", searcher(subs[0]), vector_s),
    ]
    for mode in ("reciprocal_rerank", "relative_score", "dist_based_score"):
        fusion = QueryFusionRetriever(
            subs,
            llm=MockLLM(),
            mode=mode,
            num_queries=1,
            use_async=False,
            similarity_top_k=k,
        )
        rows.append(
            measure(f"LlamaIndex QueryFusionRetriever {mode}", searcher(fusion), vector_s + bm25_s)
        )
    return rows
