"""HybridRetriever: passages + encoder + dense index + BM25, fused into one ranking.

A query is encoded once, searched in the dense index and in BM25 (``candidates`` each), and the
two rankings are fused with :func:`~simcse_rag.index.fusion.fuse` (``HybridConfig.fusion``).
Every hit carries its fused score and its rank and score in each source. Passage vectors are
cached by (model fingerprint, text hash), so re-indexing unchanged texts never re-runs the encoder.

This module only composes: settings are :mod:`simcse_rag.index.config`, the passages and their
indexes (add / delete / re-encode) :mod:`simcse_rag.index.indexed_corpus`, the search path
:mod:`simcse_rag.index.hybrid_search`, query encoding :mod:`simcse_rag.query_encoder`, the saved
layout and its checks :mod:`simcse_rag.index.persist`, dense backends
:mod:`simcse_rag.index.backend`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simcse_rag import _validate
from simcse_rag.index import hybrid_search, persist
from simcse_rag.index.backend import DenseBackend, check_backend
from simcse_rag.index.bm25 import BM25Index
from simcse_rag.index.cache import EmbeddingCache
from simcse_rag.index.config import HybridConfig
from simcse_rag.index.filters import Filter, parse_filter
from simcse_rag.index.indexed_corpus import IndexedCorpus
from simcse_rag.index.persist import FORMAT_VERSION, MANIFEST
from simcse_rag.query_encoder import LazyQueryEncoder
from simcse_rag.schema import SEARCH_MODES, Hit, Passage, check_passages

__all__ = ["FORMAT_VERSION", "MANIFEST", "MODES", "HybridConfig", "HybridRetriever"]

logger = logging.getLogger(__name__)

#: Search modes (alias of :data:`simcse_rag.schema.SEARCH_MODES`).
MODES: tuple[str, ...] = SEARCH_MODES
#: What ``filter=`` accepts: a parsed filter, a dict, or its JSON text.
FilterLike = Filter | dict[str, Any] | str


class HybridRetriever:
    """Dense + BM25 retrieval over passages, fused by ``config.fusion``.

    Args:
        encoder: A :class:`~simcse_rag.encoder.SimCSEEncoder` (or anything with ``encode``,
            ``tokenize``, ``forward``, ``dim``, ``fingerprint`` and ``name_or_path``).
        config: Settings (default :class:`HybridConfig`).

    Example:
        >>> retriever = HybridRetriever.from_passages(passages, SimCSEEncoder.from_pretrained())
        >>> for hit in retriever.search("child with fever", k=3):
        ...     print(hit.rank, hit.id, hit.sources)
    """

    def __init__(
        self,
        encoder: Any,
        config: HybridConfig | None = None,
        *,
        dense_index: DenseBackend | None = None,
    ) -> None:
        if config is not None and not isinstance(config, HybridConfig):
            raise TypeError(f"config must be a HybridConfig, got {type(config).__name__}.")
        if dense_index is not None:
            check_backend(dense_index, encoder.dim)
        # No config: the fusion setting adapt saved with the model, else the defaults.
        self.config = config or HybridConfig.for_model(getattr(encoder, "name_or_path", None))
        # Passages, indexes, cache and their lock; twins from with_query_settings share it.
        self._corpus = IndexedCorpus(encoder, self.config, dense_index)
        self._queries = LazyQueryEncoder.for_encoder(
            encoder, self.config.query_backend, fingerprint=self._corpus.fingerprint
        )

    @classmethod
    def from_passages(
        cls,
        passages: Iterable[Passage],
        encoder: Any,
        *,
        config: HybridConfig | None = None,
        dense_index: DenseBackend | None = None,
        show_progress: bool = False,
    ) -> HybridRetriever:
        """Build a retriever over ``passages`` (``dense_index``: another backend, e.g. Milvus).

        Raises:
            ValueError: No passages, or duplicate ids.
        """
        items = check_passages(passages)
        if not items:
            raise ValueError(
                "Cannot build a retriever from an empty corpus; give at least one passage."
            )
        retriever = cls(encoder, config, dense_index=dense_index)
        retriever.add(items, show_progress=show_progress)
        return retriever

    # ------------------------------------------------------------------ contents
    @property
    def encoder(self) -> Any:
        """The encoder (a saved index searched through its cached ONNX query model loads the
        PyTorch model here, on first use)."""
        return self._corpus.encoder

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the encoder the passage vectors were made with."""
        return self._corpus.fingerprint

    @property
    def passages(self) -> list[Passage]:
        """All passages, in insertion order."""
        return list(self._corpus.passages.values())

    @property
    def cache(self) -> EmbeddingCache:
        """The embedding cache."""
        return self._corpus.cache

    @property
    def dense_index(self) -> DenseBackend:
        """The dense index (FAISS :class:`~simcse_rag.index.dense.DenseIndex` unless another
        backend was given)."""
        return self._corpus.dense

    @property
    def bm25_index(self) -> BM25Index:
        """The BM25 index."""
        return self._corpus.bm25

    def __len__(self) -> int:
        return len(self._corpus.passages)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._corpus.passages

    def get(self, doc_id: str) -> Passage:
        """Return the passage with id ``doc_id``.

        Raises:
            KeyError: Unknown id.
        """
        try:
            return self._corpus.passages[doc_id]
        except KeyError:
            raise KeyError(f"No passage with id {doc_id!r}.") from None

    # ------------------------------------------------------------------ updates
    @property
    def passage_backend(self) -> str:
        """The backend of this index's passage vectors: ``config.passage_backend`` resolved, or
        the one a loaded index's manifest records (see :mod:`simcse_rag.index.passage_vectors`)."""
        return self._corpus.passage_backend(self.config)

    def embed_passages(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Vectors ``(len(texts), dim)`` for ``texts`` (a few: mining, scoring), encoding only
        those not in the cache (each distinct text once, a chunk at a time; see
        :func:`simcse_rag.index.passage_vectors.encode_missing`)."""
        return self._corpus.embed(texts, self.config, show_progress=show_progress)

    def add(self, passages: Iterable[Passage], *, show_progress: bool = False) -> None:
        """Add passages; an id already present is replaced (upsert).

        Streaming: texts are encoded a chunk at a time into the embedding cache (outside the
        lock, so searches go on meanwhile), then the dense index takes the cached vectors a
        chunk at a time (:func:`~simcse_rag.index.passage_vectors.insert`); no matrix of the
        whole batch's vectors is ever built, so memory grows by the index and its cache only.
        Searches see the batch all at once: the insertion runs under the write lock.

        Raises:
            TypeError: An item is not a :class:`Passage`.
            ValueError: Duplicate ids within ``passages``.
        """
        items = check_passages(passages)
        self._corpus.add(items, self.config, show_progress=show_progress)

    def delete(self, ids: Iterable[str]) -> int:
        """Remove passages by id; unknown ids are ignored. Returns how many were removed."""
        if isinstance(ids, str):
            raise TypeError("delete() takes a list of ids; wrap a single id in a list.")
        return self._corpus.delete(ids)

    def load_cache(self, path: str | os.PathLike[str]) -> int:
        """Reuse the embedding cache of a saved retriever if it was made by the same model.

        Returns:
            Number of vectors taken (0 when there is none or the model differs).
        """
        saved = persist.read_cache(path)
        return 0 if saved is None else self._corpus.cache.merge(saved)

    # ------------------------------------------------------------------ search
    def with_query_settings(self, **changes: Any) -> HybridRetriever:
        """A retriever over the same passages and indexes with other query-time settings.

        Only :data:`~simcse_rag.index.config.QUERY_TIME_FIELDS` may change (fusion method, RRF
        constant and weights, query batch size, query backend): the dense structure, tokenizer
        and BM25 backend are fixed when the indexes are built. Nothing is copied or re-encoded;
        both retrievers share the indexes (and their lock), so an update through one is seen by
        the other.

        Raises:
            ValueError: A field that is not query-time, or a value :class:`HybridConfig`
                refuses.
        """
        config = self.config.with_query_settings(**changes)
        twin = copy.copy(self)
        twin.config = config
        if config.query_backend != self.config.query_backend:
            twin._queries = LazyQueryEncoder.for_encoder(
                self._corpus.model, config.query_backend, fingerprint=self.fingerprint
            )
        return twin

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Encode queries into unit vectors ``(m, dim)``.

        With an ONNX query backend (the default on CPU) ONNX Runtime runs them; otherwise
        PyTorch (:class:`~simcse_rag.query_encoder.TorchQueryEncoder`).
        """
        return self._queries.encode(queries, batch_size=self.config.batch_size)

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: str = "hybrid",
        candidates: int = 100,
        filter: FilterLike | None = None,  # noqa: A002 - the name every RAG framework uses
    ) -> list[Hit]:
        """Retrieve the ``k`` best passages for ``query``.

        Args:
            query: The query text (empty or blank -> ``[]``).
            k: Hits to return (> 0); fewer when the corpus is smaller.
            mode: ``"hybrid"`` (dense and BM25 fused by ``config.fusion``), ``"dense"`` or
                ``"bm25"``.
            candidates: Hits taken from each source before fusion (raised to ``k`` if smaller).
            filter: Metadata filter (dict, JSON text or :class:`~simcse_rag.index.filters.Filter`;
                language in :mod:`simcse_rag.index.filters`). Both legs search only passages
                that pass it, so ``k`` hits come back whenever ``k`` passages pass.

        Returns:
            Hits best first with text, metadata, score (fused score in hybrid mode, the
            source score otherwise), 1-based rank and per-source rank and score.

        Raises:
            ValueError: ``k`` or ``candidates`` <= 0, an unknown mode, or a bad filter.
            TypeError: ``query`` is not a string.
        """
        if not isinstance(query, str):
            raise TypeError(
                f"query must be a str, got {type(query).__name__}; use search_batch for lists."
            )
        return self.search_batch([query], k=k, mode=mode, candidates=candidates, filter=filter)[0]

    def search_batch(
        self,
        queries: Sequence[str],
        *,
        k: int = 10,
        mode: str = "hybrid",
        candidates: int = 100,
        filter: FilterLike | None = None,  # noqa: A002 - the name every RAG framework uses
    ) -> list[list[Hit]]:
        """Batched :meth:`search`: one list of hits per query (queries are encoded together);
        ``filter`` applies to every query of the batch."""
        if isinstance(queries, str):
            raise TypeError("search_batch() takes a list of queries; for one query use search().")
        queries = _validate.str_list(queries, "queries", single="for one query use search()")
        k = _validate.check_k(k)
        candidates = _validate.positive_int(candidates, "candidates")
        mode = _validate.check_mode(mode)
        flt = None if filter is None else parse_filter(filter)
        depth = max(candidates, k) if mode == "hybrid" else k
        live = [i for i, q in enumerate(queries) if q.strip()]
        if not live:
            return [[] for _ in queries]
        corpus = self._corpus
        with corpus.lock.read():
            allowed = None if flt is None else corpus.allowed_ids(flt)
            return hybrid_search.search_live(
                self._legs(),
                self.config,
                corpus.passages,
                queries,
                live,
                k=k,
                mode=mode,
                depth=depth,
                allowed=allowed,
            )

    def _legs(self) -> hybrid_search.Legs:
        corpus = self._corpus
        return hybrid_search.Legs(
            corpus.dense, corpus.bm25, self.encode_queries, corpus.coverage.dense_weights
        )

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save everything to ``path`` atomically (an existing index there is replaced only
        once the new one is fully written); layout in :mod:`simcse_rag.index.persist`.

        Returns:
            The folder.
        """
        # Exporting the query model takes seconds: done before taking the lock, not under it.
        query_model = self._queries.query_model()
        with self._corpus.lock.write():
            return persist.write_index(
                path, self._corpus.contents(), query_model, **self._model_info()
            )

    def manifest(self) -> dict[str, Any]:
        """What :meth:`save` writes to ``manifest.json``: format, model, counts, config."""
        return persist.build_manifest(self._corpus.contents(), **self._model_info())

    def _model_info(self) -> dict[str, Any]:
        return {
            "encoder": self._corpus.model,
            "fingerprint": self.fingerprint,
            "config": self.config,
        }

    @staticmethod
    def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read and check the manifest of a saved retriever.

        Raises:
            ValueError: Not a retriever folder, or an unsupported format version.
        """
        return persist.read_manifest(path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        encoder: Any | None = None,
        *,
        passage_backend: str | None = None,
    ) -> HybridRetriever:
        """Load a retriever saved by :meth:`save`.

        Args:
            path: The folder.
            encoder: The encoder to use; ``None`` loads the model named in the manifest (or,
                when the index holds a current ONNX query model, defers loading it until
                something needs PyTorch).
            passage_backend: ``None`` keeps the index's (its manifest's; ``torch`` for an old
                manifest); another re-encodes every passage (FAISS dense index only).

        Raises:
            ValueError: Missing / corrupted files, inconsistent counts, an encoder whose
                fingerprint differs from the one the index was built with, or a passage
                backend change the dense index cannot take.
        """
        saved = persist.SavedIndex.open(path)
        retriever = cls(saved.encoder(encoder), saved.config)
        corpus = retriever._corpus
        corpus.restore(saved.read_for(corpus.model, corpus.fingerprint))
        if passage_backend is not None:
            retriever.switch_passage_backend(passage_backend)
        if retriever._queries.use_saved(saved.query_model, saved.folder):
            # Queries need no PyTorch: one query now pays the search path's one-time set-up
            # (ONNX Runtime session, tokenizers, lazy imports), so the first user's query does not.
            retriever.search("warm up", k=1)
        return retriever

    def switch_passage_backend(self, backend: str) -> bool:
        """Make ``backend`` this index's passage backend (``config.passage_backend`` too),
        re-encoding every passage when it resolves to another backend than the vectors held
        (:meth:`load` with ``passage_backend=`` calls it).

        Returns:
            Whether the passages were re-encoded.

        Raises:
            ValueError: An unknown or unusable backend, or a dense index other than FAISS
                (:func:`simcse_rag.index.passage_vectors.reencode`).
        """
        self.config = dataclasses.replace(self.config, passage_backend=backend)
        return self._corpus.switch_backend(self.config)
