"""BM25 scoring engines behind :class:`~simcse_rag.index.bm25.BM25Index`.

Both score with Lucene's BM25 and return one float32 score per document for a query's term ids
(a repeated id adds its term's score once per occurrence):

* :class:`Bm25sEngine`: bm25s precomputes every (document, term) score into a sparse CSC matrix,
  so a query costs a sum over the postings of its terms.
* :class:`RankBm25Engine`: rank-bm25's ``BM25Okapi`` with the same Lucene idf, kept for parity
  checks; it scores every document in Python.

Neither supports incremental updates: the index rebuilds its engine from the stored token ids.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

__all__ = ["BACKENDS", "BM25Engine", "Bm25sEngine", "RankBm25Engine", "new_engine", "top_k"]

BACKENDS: tuple[str, ...] = ("bm25s", "rank_bm25")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Return the positions of the ``k`` best scores, best first; ties by lower position."""
    n = scores.shape[0]
    k = min(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    return part[np.lexsort((part, -scores[part]))]


class BM25Engine(ABC):
    """What both engines are: Lucene BM25 parameters, a build step and per-document scores.

    Args:
        k1: Term-frequency saturation.
        b: Length normalisation.
    """

    def __init__(self, k1: float, b: float) -> None:
        self.k1, self.b = k1, b
        self.num_docs = 0

    @abstractmethod
    def build(self, token_ids: list[list[int]], vocab_size: int) -> None:
        """Index documents given as term ids below ``vocab_size``."""

    @abstractmethod
    def scores(self, term_ids: np.ndarray) -> np.ndarray:
        """BM25 score of every document for the ``term_ids`` of a query (a repeated id counts
        once per occurrence)."""


class Bm25sEngine(BM25Engine):
    """bm25s scoring matrix; queries summed over postings with ``np.bincount``."""

    def __init__(self, k1: float, b: float) -> None:
        super().__init__(k1, b)
        self.data = np.zeros(0, np.float32)
        self.indices = np.zeros(0, np.int32)
        self.indptr = np.zeros(1, np.int64)

    def build(self, token_ids: list[list[int]], vocab_size: int) -> None:
        """Score every (document, term) pair of ``token_ids`` over ``vocab_size`` terms."""
        import bm25s

        if not any(token_ids):  # no terms at all: avgdl would be 0 (bm25s divides by it)
            self.set_matrix(
                np.zeros(0, np.float32),
                np.zeros(0, np.int32),
                np.zeros(vocab_size + 1, np.int64),
                len(token_ids),
            )
            return
        engine = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        scores = engine.build_index_from_ids(
            unique_token_ids=list(range(vocab_size)),
            corpus_token_ids=token_ids,
            show_progress=False,
        )
        self.set_matrix(scores["data"], scores["indices"], scores["indptr"], len(token_ids))

    def set_matrix(
        self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, num_docs: int
    ) -> None:
        """Use a score matrix built earlier (a saved index), in CSC form over terms."""
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.indices = np.ascontiguousarray(indices)
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.num_docs = num_docs

    def scores(self, term_ids: np.ndarray) -> np.ndarray:
        """BM25 score of every document for the ``term_ids`` of a query (a repeated id counts
        once per occurrence)."""
        if term_ids.size == 0:
            return np.zeros(self.num_docs, dtype=np.float32)
        starts, ends = self.indptr[term_ids], self.indptr[term_ids + 1]
        # Hand-written instead of bm25s.get_scores_from_ids: that sums postings with np.add.at,
        # which is several times slower than one np.bincount over the concatenated postings.
        docs = np.concatenate([self.indices[s:e] for s, e in zip(starts, ends, strict=False)])
        weights = np.concatenate([self.data[s:e] for s, e in zip(starts, ends, strict=False)])
        return np.bincount(docs, weights=weights, minlength=self.num_docs).astype(np.float32)


class RankBm25Engine(BM25Engine):
    """rank-bm25's BM25Okapi with Lucene's idf (parity backend)."""

    def __init__(self, k1: float, b: float) -> None:
        super().__init__(k1, b)
        self.model: Any = None

    def build(self, token_ids: list[list[int]], vocab_size: int) -> None:
        """Index ``token_ids`` (``vocab_size`` is implied by the ids; kept for one signature)."""
        from rank_bm25 import BM25Okapi

        class _LuceneOkapi(BM25Okapi):
            # BM25Okapi's own idf is 0 for a term in half of the documents and floored by an
            # epsilon otherwise, which zeroes scores on tiny corpora; use Lucene's idf instead.
            def _calc_idf(self, nd: dict[Any, int]) -> None:
                n = self.corpus_size
                self.idf = {t: math.log(1 + (n - df + 0.5) / (df + 0.5)) for t, df in nd.items()}

        self.num_docs = len(token_ids)
        # rank-bm25 divides by the corpus size: never build it empty.
        self.model = _LuceneOkapi(token_ids, k1=self.k1, b=self.b) if token_ids else None

    def scores(self, term_ids: np.ndarray) -> np.ndarray:
        """BM25 score of every document for the ``term_ids`` of a query (a repeated id counts
        once per occurrence)."""
        if self.model is None or term_ids.size == 0:
            return np.zeros(self.num_docs, dtype=np.float32)
        # BM25Okapi multiplies by (k1 + 1); divide it out so scores equal the bm25s backend's.
        raw = self.model.get_scores([int(t) for t in term_ids])
        return (np.asarray(raw) / (self.k1 + 1)).astype(np.float32)


def new_engine(backend: str, k1: float, b: float) -> BM25Engine:
    """An empty engine of ``backend`` (one of :data:`BACKENDS`, checked by the caller)."""
    cls = Bm25sEngine if backend == "bm25s" else RankBm25Engine
    return cls(k1, b)
