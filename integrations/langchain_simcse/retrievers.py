"""SimCSERetriever: a LangChain retriever over simcse-rag's hybrid BM25 + dense index."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, field_validator

from langchain_simcse.embeddings import SimCSEEmbeddings
from simcse_rag import validate
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.index.filters import Filter, parse_filter
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever
from simcse_rag.index.micro_batch import shared_batcher
from simcse_rag.index.saved import load_retriever, save_retriever
from simcse_rag.schema import Hit, Passage

Mode = Literal["hybrid", "dense", "bm25"]


def _resolve_encoder(
    embeddings: SimCSEEmbeddings | None, encoder: SimCSEEncoder | None
) -> SimCSEEncoder | None:
    if embeddings is not None and encoder is not None:
        raise ValueError("Pass either embeddings= or encoder=, not both.")
    if embeddings is None:
        return encoder
    if not isinstance(embeddings, SimCSEEmbeddings):
        raise TypeError(
            f"embeddings must be a SimCSEEmbeddings, got {type(embeddings).__name__}; to fuse "
            "another embedding model with BM25 use it in a vector store and LangChain's "
            "EnsembleRetriever."
        )
    return embeddings.encoder


def _to_passages(documents: Iterable[Document], ids: Sequence[str] | None) -> list[Passage]:
    documents = list(documents)
    if ids is not None and len(ids) != len(documents):
        raise ValueError(
            f"Got {len(ids)} ids for {len(documents)} documents; pass one per document."
        )
    passages = []
    for i, doc in enumerate(documents):
        if not isinstance(doc, Document):
            raise TypeError(
                f"documents[{i}] is {type(doc).__name__}, expected a LangChain Document."
            )
        # Documents without an id get a random one, as LangChain's own vector stores do.
        doc_id = ids[i] if ids is not None else (doc.id or uuid.uuid4().hex)
        passages.append(Passage(id=doc_id, text=doc.page_content, metadata=dict(doc.metadata)))
    return passages


#: Keys ``search_kwargs`` accepts (as in LangChain's ``VectorStoreRetriever``).
_SEARCH_KWARGS = ("filter", "k")


def _combine(configured: Any, per_call: Any) -> Filter | None:
    """AND a per-call filter with the configured one: a call can narrow, never widen it."""
    parts = [parse_filter(f).spec for f in (configured, per_call) if f is not None]
    if not parts:
        return None
    return parse_filter(parts[0] if len(parts) == 1 else {"$and": parts})


def _to_document(hit: Hit) -> Document:
    metadata = dict(hit.metadata)
    metadata["score"] = hit.score
    metadata["rank"] = hit.rank
    metadata["sources"] = {
        name: {"rank": src.rank, "score": src.score} for name, src in hit.sources.items()
    }
    return Document(id=hit.id, page_content=hit.text, metadata=metadata)


class SimCSERetriever(BaseRetriever):
    """LangChain retriever: hybrid BM25 + SimCSE dense search, the two rankings fused.

    One index holds the passages, their vectors (FAISS) and a BM25 index (Chinese text is
    tokenized with jieba); a query runs both and fuses the rankings by the index's
    ``HybridConfig.fusion`` (default ``dist_peak``; ``rrf`` for weighted, 1-based RRF), merged by
    document id. Each returned ``Document`` carries its ``id`` and, in ``metadata``,
    the passage metadata plus ``score`` (the fused score, or the source score in a single-source
    mode), ``rank`` and ``sources`` (``{"dense": {"rank", "score"}, "bm25": {...}}``); these three
    keys override passage metadata of the same name.

    Example:
        .. code-block:: python

            from langchain_simcse import SimCSEEmbeddings, SimCSERetriever

            retriever = SimCSERetriever.from_documents(docs, embeddings=SimCSEEmbeddings(), k=5)
            retriever.invoke("儿童发烧怎么办")
            retriever.invoke("fever in children", k=10)
            retriever.save("my-index")
            retriever = SimCSERetriever.load("my-index")
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    index: HybridRetriever = Field(repr=False, exclude=True)
    """The core hybrid index (passages, FAISS vectors, BM25)."""

    k: int = Field(default=4, gt=0)
    """Number of documents to return (override per call with ``invoke(query, k=...)``)."""

    mode: Mode = "hybrid"
    """``hybrid`` (BM25 + dense fused), ``dense`` or ``bm25``."""

    candidates: int = Field(default=100, gt=0)
    """How many hits each source contributes to the fusion (at least ``k`` are used)."""

    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """``{"filter": {...}, "k": n}``, as LangChain's vector-store retrievers take them. The
    filter (language in :mod:`simcse_rag.index.filters`; LangChain's dict filters are valid
    ones) applies to every call; a per-call ``invoke(query, filter=...)`` is ANDed with it, so a
    call can narrow it but never widen it."""

    @field_validator("search_kwargs")
    @classmethod
    def _check_search_kwargs(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(_SEARCH_KWARGS))
        if unknown:
            raise ValueError(
                f"search_kwargs: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"use {', '.join(_SEARCH_KWARGS)} (k / mode / candidates are fields)."
            )
        if value.get("filter") is not None:
            parse_filter(value["filter"])  # a bad filter fails here, not on the first query
        if "k" in value:
            validate.positive_int(value["k"], "search_kwargs['k']")
        return value

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_documents(
        cls,
        documents: Iterable[Document],
        embeddings: SimCSEEmbeddings | None = None,
        *,
        encoder: SimCSEEncoder | None = None,
        ids: Sequence[str] | None = None,
        config: HybridConfig | None = None,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> SimCSERetriever:
        """Index LangChain documents.

        Args:
            documents: The documents; ``Document.id`` is kept (a random id when unset).
            embeddings: The embedding model; ``None`` (and no ``encoder``) loads the bundled
                all-MiniLM-L6-v2.
            encoder: An already-loaded encoder, instead of ``embeddings``.
            ids: Ids to use instead of the documents' own.
            config: Index settings (dense index kind, tokenizer, fusion method, RRF k, weights...).
            show_progress: Show a progress bar while encoding.
            **kwargs: Retriever fields (``k``, ``mode``, ``candidates``, ``tags``...).

        Returns:
            The retriever.
        """
        resolved = _resolve_encoder(embeddings, encoder) or SimCSEEncoder.from_pretrained()
        index = HybridRetriever.from_passages(
            _to_passages(documents, ids), resolved, config=config, show_progress=show_progress
        )
        return cls(index=index, **kwargs)

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        embeddings: SimCSEEmbeddings | None = None,
        metadatas: Sequence[dict[str, Any]] | None = None,
        *,
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> SimCSERetriever:
        """Index plain texts (see :meth:`from_documents` for the other arguments).

        Args:
            texts: The texts.
            embeddings: The embedding model.
            metadatas: One metadata dict per text.
            ids: One id per text (random ids when omitted).
            **kwargs: Passed to :meth:`from_documents`.

        Returns:
            The retriever.
        """
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(
                f"Got {len(metadatas)} metadatas for {len(texts)} texts; pass one per text."
            )
        documents = [
            Document(page_content=t, metadata=dict(metadatas[i]) if metadatas else {})
            for i, t in enumerate(texts)
        ]
        return cls.from_documents(documents, embeddings, ids=ids, **kwargs)

    # ------------------------------------------------------------------ updates
    def add_documents(
        self,
        documents: Iterable[Document],
        *,
        ids: Sequence[str] | None = None,
        show_progress: bool = False,
    ) -> list[str]:
        """Add or replace documents (by id).

        Returns:
            The ids of the added documents.
        """
        passages = _to_passages(documents, ids)
        self.index.add(passages, show_progress=show_progress)
        return [p.id for p in passages]

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents by id.

        Returns:
            The number removed.
        """
        return self.index.delete(ids)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Save the index and these settings (JSON, ``.npy``, FAISS files; no pickle).

        The folder is written to a temporary sibling and renamed into place.

        Returns:
            The folder.
        """
        return save_retriever(
            self.index, path, k=self.k, mode=self.mode, candidates=self.candidates
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        embeddings: SimCSEEmbeddings | None = None,
        *,
        encoder: SimCSEEncoder | None = None,
        **kwargs: Any,
    ) -> SimCSERetriever:
        """Load a retriever written by :meth:`save` (or a bare ``HybridRetriever.save`` folder).

        Args:
            path: The folder.
            embeddings: Embedding model to use; ``None`` loads the model named in the index.
                Its fingerprint must match the one the index was built with.
            encoder: An already-loaded encoder, instead of ``embeddings``.
            **kwargs: Field overrides (``k``, ``mode``...).

        Returns:
            The retriever.
        """
        index, settings = load_retriever(path, _resolve_encoder(embeddings, encoder))
        return cls(index=index, **{**settings, **kwargs})

    # ------------------------------------------------------------------ retrieval
    def _settings(self, k: int | None, mode: str | None, filter: Any) -> dict[str, Any]:
        """One call's search arguments: per-call values over the configured ones."""
        k = validate.positive_int(self.search_kwargs.get("k", self.k) if k is None else k, "k")
        return {
            "k": k,
            "mode": validate.check_mode(self.mode if mode is None else mode),
            "candidates": max(self.candidates, k),
            "filter": _combine(self.search_kwargs.get("filter"), filter),
        }

    def _search(
        self, query: str, k: int | None, mode: str | None, filter: Any = None
    ) -> list[Document]:
        settings = self._settings(k, mode, filter)  # checked even for blank queries
        if not query.strip():
            return []
        return [_to_document(hit) for hit in self.index.search(query, **settings)]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        mode: Mode | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002 - LangChain's name for it
    ) -> list[Document]:
        return self._search(query, k, mode, filter)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        mode: Mode | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002 - LangChain's name for it
    ) -> list[Document]:
        settings = self._settings(k, mode, filter)
        if not query.strip():
            return []
        # The search runs in the loop's thread pool, so the loop keeps running; concurrent
        # ainvoke / abatch calls with the same settings are searched together, in one
        # search_batch call (simcse_rag.index.micro_batch).
        hits = await shared_batcher(self.index).search(query, **settings)
        return [_to_document(hit) for hit in hits]
