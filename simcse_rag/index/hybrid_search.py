"""One search of a hybrid index: the dense and BM25 legs, then fusion into hits.

:class:`~simcse_rag.index.hybrid.HybridRetriever` owns the passages, indexes and lock;
:func:`search_live` is what runs once it has checked the arguments and taken the read lock.
The legs are plain functions over the public search methods of the dense backend
(:class:`~simcse_rag.index.backend.DenseBackend`) and :class:`~simcse_rag.index.bm25.BM25Index`,
so the search path can be read (and tested) apart from index maintenance and persistence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from simcse_rag.index.backend import DenseBackend
from simcse_rag.index.bm25 import BM25Index
from simcse_rag.index.config import HybridConfig
from simcse_rag.index.fusion import fuse
from simcse_rag.schema import Hit, Passage, SourceHit

__all__ = ["Legs", "Ranking", "bm25_rankings", "dense_rankings", "fill_hit", "search_live"]

#: One leg's ranking of one query: ``(passage id, score)`` best first.
Ranking = list[tuple[str, float]]


@dataclass(frozen=True)
class Legs:
    """What a search reads: the two indexes and how queries become vectors and weights.

    Attributes:
        dense: The dense backend.
        bm25: The BM25 index.
        encode_queries: Texts -> unit vectors ``(m, dim)``.
        dense_weights: Texts and the configured dense weight -> each query's dense weight
            (scaled by how much of the query the model can read). A hybrid query whose weight
            is 0 is not encoded: its dense leg could add nothing to the fusion, so its hits
            are BM25's (with no ``dense`` source).
    """

    dense: DenseBackend
    bm25: BM25Index
    encode_queries: Callable[[Sequence[str]], np.ndarray]
    dense_weights: Callable[[Sequence[str], float], list[float]]


def dense_rankings(
    dense: DenseBackend,
    vectors: np.ndarray,
    depth: int,
    allowed: frozenset[str] | None = None,
) -> list[Ranking]:
    """The dense leg: the ``depth`` nearest passages of each query vector (within ``allowed``)."""
    if allowed is None:
        ids, scores = dense.search(vectors, depth)
    else:
        ids, scores = dense.search(vectors, depth, allowed=allowed)
    return [
        list(zip(r_ids.tolist(), r_scores.tolist(), strict=False))
        for r_ids, r_scores in zip(ids, scores, strict=False)
    ]


def bm25_rankings(
    bm25: BM25Index, texts: Sequence[str], depth: int, allowed: frozenset[str] | None = None
) -> list[Ranking]:
    """The BM25 leg: the ``depth`` best-scoring passages of each query (within ``allowed``)."""
    ids, scores = bm25.search(list(texts), depth, allowed=allowed)
    # Documents sharing no term with the query score 0: they are not BM25 matches.
    return [
        [(d, s) for d, s in zip(r_ids.tolist(), r_scores.tolist(), strict=False) if s > 0]
        for r_ids, r_scores in zip(ids, scores, strict=False)
    ]


def fill_hit(hit: Hit, passage: Passage) -> Hit:
    """``hit`` with the passage's text and metadata."""
    return Hit(
        id=hit.id,
        score=hit.score,
        rank=hit.rank,
        text=passage.text,
        metadata=passage.metadata,
        sources=hit.sources,
    )


def _leg_hits(ranking: Ranking, mode: str, k: int) -> list[Hit]:
    return [
        Hit(id=d, score=s, rank=r, sources={mode: SourceHit(rank=r, score=s)})
        for r, (d, s) in enumerate(ranking[:k], start=1)
    ]


def _dense_legs(
    legs: Legs,
    texts: Sequence[str],
    weights: Sequence[float],
    mode: str,
    depth: int,
    allowed: frozenset[str] | None,
) -> list[Ranking] | None:
    """Dense rankings of ``texts`` (``None`` in ``bm25`` mode). In ``hybrid`` mode a text whose
    dense weight is 0 gets an empty ranking without being encoded: the query encoder is most of
    a search's time, and a leg with no weight cannot change the fused order."""
    if mode == "bm25":
        return None
    need = [j for j in range(len(texts)) if mode == "dense" or weights[j] > 0]
    out: list[Ranking] = [[] for _ in texts]
    if need:
        vectors = legs.encode_queries([texts[j] for j in need])
        found = dense_rankings(legs.dense, vectors, depth, allowed)
        for j, ranking in zip(need, found, strict=True):
            out[j] = ranking
    return out


def search_live(
    legs: Legs,
    config: HybridConfig,
    passages: Mapping[str, Passage],
    queries: Sequence[str],
    live: Sequence[int],
    *,
    k: int,
    mode: str,
    depth: int,
    allowed: frozenset[str] | None = None,
) -> list[list[Hit]]:
    """Search the non-blank ``queries`` (their positions in ``live``); blank ones get ``[]``.

    Args:
        legs: The indexes and query encoding.
        config: Fusion method, RRF constant and weights.
        passages: Id -> passage, to fill the hits.
        queries: All queries of the batch.
        live: Positions of the queries to search.
        k: Hits per query.
        mode: ``hybrid``, ``dense`` or ``bm25``.
        depth: Candidates taken from each leg.
        allowed: Ids a filter allows (``None``: no filter).

    Returns:
        One list of hits per query, best first.
    """
    results: list[list[Hit]] = [[] for _ in queries]
    if not passages or (allowed is not None and not allowed):
        return results
    texts = [queries[i] for i in live]
    weights = legs.dense_weights(texts, config.weights["dense"]) if mode == "hybrid" else []
    dense = _dense_legs(legs, texts, weights, mode, depth, allowed)
    sparse = bm25_rankings(legs.bm25, texts, depth, allowed) if mode in ("hybrid", "bm25") else None
    for j, i in enumerate(live):
        if mode == "hybrid":
            hits = fuse(
                {"dense": dense[j], "bm25": sparse[j]},
                config.fusion,
                k=config.rrf_k,
                weights={**config.weights, "dense": weights[j]},
                limit=k,
            )
        else:
            hits = _leg_hits(dense[j] if mode == "dense" else sparse[j], mode, k)
        results[i] = [fill_hit(h, passages[h.id]) for h in hits]
    return results
