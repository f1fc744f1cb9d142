"""Reciprocal Rank Fusion (Cormack, Clarke and Buettcher, SIGIR 2009).

``score(d) = sum_s w_s / (k + rank_s(d))`` over the sources ``s`` that returned ``d``, with
1-based ranks. Documents are merged by id (never by text); a document repeated within one source
keeps its first (best) rank there. Ties are broken deterministically: by the best rank the
document reached in any source, then by id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from simcse_rag import _validate
from simcse_rag.schema import Hit, SourceHit


def _check(rankings: object, k: object, weights: object, limit: object) -> None:
    if not isinstance(rankings, Mapping):
        raise TypeError(
            "rankings must map a source name to a list of (doc_id, score) pairs, got "
            f"{type(rankings).__name__}."
        )
    _validate.non_negative_number(k, "RRF k")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}.")
    if weights is None:
        return
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights must map source names to numbers, got {type(weights).__name__}.")
    unknown = sorted(set(weights) - set(rankings))
    if unknown:
        raise ValueError(
            f"weights name unknown source(s) {unknown}; sources are {sorted(rankings)}."
        )
    for name, w in weights.items():
        _validate.non_negative_number(w, f"weight for source {name!r}")


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[tuple[str, float]]],
    *,
    k: float = 60,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[Hit]:
    """Fuse ranked lists by Reciprocal Rank Fusion.

    Args:
        rankings: Source name -> ``(doc_id, source_score)`` pairs, best first.
        k: RRF constant (60 in the paper); larger flattens the rank discount.
        weights: Per-source multipliers (default 1.0; a source missing here gets 1.0).
        limit: Keep only the best ``limit`` hits.

    Returns:
        Hits best first, ``rank`` 1-based, ``score`` the fused score and ``sources[name]`` the
        document's rank and score in each source that returned it. ``text`` / ``metadata`` are
        left empty for the caller to fill.

    Raises:
        TypeError: ``rankings`` / ``weights`` are not mappings, or a pair is malformed.
        ValueError: ``k`` < 0, a negative or non-finite weight, a weight for an unknown source,
            ``limit`` <= 0, or an id that is not a non-empty string.

    Example:
        >>> hits = reciprocal_rank_fusion({"dense": [("a", 0.9), ("b", 0.8)], "bm25": [("b", 7.0)]})
        >>> [h.id for h in hits], round(hits[0].score, 5)
        (['b', 'a'], 0.03252)
    """
    _check(rankings, k, weights, limit)
    weights = weights or {}
    fused: dict[str, float] = {}
    best_rank: dict[str, int] = {}
    sources: dict[str, dict[str, SourceHit]] = {}
    for name, ranking in rankings.items():
        w = float(weights.get(name, 1.0))
        rank = 0
        seen: set[str] = set()
        for item in ranking:
            try:
                doc_id, score = item
            except (TypeError, ValueError):
                raise TypeError(
                    f"rankings[{name!r}] must hold (doc_id, score) pairs, got {item!r}."
                ) from None
            if not isinstance(doc_id, str) or not doc_id:
                raise ValueError(f"rankings[{name!r}] holds an invalid doc id {doc_id!r}.")
            if doc_id in seen:
                continue  # a repeated id keeps its first (best) rank in this source
            seen.add(doc_id)
            rank += 1
            fused[doc_id] = fused.get(doc_id, 0.0) + w / (k + rank)
            if rank < best_rank.get(doc_id, rank + 1):
                best_rank[doc_id] = rank
            sources.setdefault(doc_id, {})[name] = SourceHit(rank=rank, score=float(score))
    order = sorted(fused, key=lambda d: (-fused[d], best_rank[d], d))
    if limit is not None:
        order = order[:limit]
    return [
        Hit(id=doc_id, score=fused[doc_id], rank=i, sources=sources[doc_id])
        for i, doc_id in enumerate(order, start=1)
    ]
