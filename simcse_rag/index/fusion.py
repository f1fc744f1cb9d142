"""Fusion of ranked lists from several sources (dense, BM25, any retriever) into one ranking.

Methods (:data:`FUSION_METHODS`, chosen by :func:`fuse`):

* ``rrf``: Reciprocal Rank Fusion (Cormack, Clarke and Buettcher, SIGIR 2009):
  ``score(d) = sum_s w_s / (k + rank_s(d))`` with 1-based ranks.
* ``relative_score``: each source's scores min-max scaled to [0, 1] over its candidates, then a
  weighted sum (Weaviate's ``relativeScoreFusion``; LlamaIndex ``QueryFusionRetriever``
  ``mode="relative_score"``).
* ``dist_based``: as ``relative_score``, but each source is scaled over mean ± 3 standard
  deviations of its candidates' scores, so one outlier does not squash the rest (Weaviate's
  former ``distributionBasedScoreFusion`` by Mazzeschi; LlamaIndex ``mode="dist_based_score"``).
* ``dist_peak`` / ``rrf_peak``: ``dist_based`` / ``rrf`` with each source's weight, per query,
  multiplied by how far its best candidate stands out of its own candidates: the top score's
  z-score ``(s_1 - mean) / sigma`` over the source's candidate scores, divided by the mean of
  that z-score over the sources (so the multipliers average 1 and equal peaks change nothing).
  A peaked score distribution is the signal score-based query performance predictors read
  (the standard deviation of the top scores: Pérez-Iglesias and Araujo, SPIRE 2010; Cummins,
  Jose and O'Riordan, SIGIR 2011; Shtok et al.'s NQC, TOIS 2012); z-scores make it comparable
  between BM25 scores and cosines (Montague and Aslam, CIKM 2001). It needs no per-corpus
  constant: a query whose BM25 top stands out leans on BM25, one whose dense top does on dense.
  A source with fewer than two candidates, or all scores equal, keeps multiplier 1.

For all methods a document missing from a source gets nothing from it; documents are merged by
id (never by text); a document repeated within one source keeps its first (best) rank there; ties
are broken deterministically: by the best rank the document reached in any source, then by id.
Every hit keeps its rank and raw score in each source.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from simcse_rag import _validate
from simcse_rag.schema import Hit, SourceHit

#: Fusion methods accepted by :func:`fuse` (and ``HybridConfig.fusion``).
FUSION_METHODS: tuple[str, ...] = ("rrf", "relative_score", "dist_based", "dist_peak", "rrf_peak")
#: The methods that scale each source's weight per query by its peak (see the module docstring).
PEAK_METHODS: tuple[str, ...] = ("dist_peak", "rrf_peak")

#: The hybrid default: chosen on each pair of shared sets, it held on the third (and was >= our
#: best single leg there) among settings with no per-corpus constant (``benchmarks/defaults.py``;
#: docs/benchmarks.md, "A default that transfers").
DEFAULT_FUSION = "dist_peak"

# One source's candidates after de-duplication: (doc_id, 1-based rank, raw score).
_Ranked = list[tuple[str, int, float]]


def _check(rankings: object, k: object, weights: object, limit: object) -> None:
    if not isinstance(rankings, Mapping):
        raise TypeError(
            "rankings must map a source name to a list of (doc_id, score) pairs, got "
            f"{type(rankings).__name__}."
        )
    _validate.non_negative_number(k, "RRF k")
    _validate.optional_positive_int(limit, "limit")
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


def _ranked(name: str, ranking: Sequence[tuple[str, float]]) -> _Ranked:
    out: _Ranked = []
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
        out.append((doc_id, len(out) + 1, float(score)))
    return out


def _min_max(scores: list[float]) -> tuple[float, float]:
    return min(scores), max(scores)


def _mean_3_sigma(scores: list[float]) -> tuple[float, float]:
    mean = sum(scores) / len(scores)
    sigma = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))  # population std
    return mean - 3 * sigma, mean + 3 * sigma


def _scaled(ranked: _Ranked, bounds: Callable[[list[float]], tuple[float, float]]) -> list[float]:
    if not ranked:
        return []
    lo, hi = bounds([s for _, _, s in ranked])
    if hi == lo:
        # One candidate, or all equal: each is its source's best. (LlamaIndex gives 0 here when
        # the score is <= 0; a cosine of 0 can still be the best match, so it gets 1 here.)
        return [1.0] * len(ranked)
    return [(s - lo) / (hi - lo) for _, _, s in ranked]


def _contributions(ranked: _Ranked, method: str, k: float) -> list[float]:
    if method in ("rrf", "rrf_peak"):
        return [1.0 / (k + rank) for _, rank, _ in ranked]
    return _scaled(ranked, _min_max if method == "relative_score" else _mean_3_sigma)


def _peak(ranked: _Ranked) -> float | None:
    """z-score of the best candidate among its source's candidates (``None``: undefined)."""
    if len(ranked) < 2:
        return None
    scores = [s for _, _, s in ranked]
    mean = sum(scores) / len(scores)
    sigma = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    if sigma == 0 or not math.isfinite(sigma):
        return None
    return (max(scores) - mean) / sigma


def peak_multipliers(ranked: Mapping[str, _Ranked]) -> dict[str, float]:
    """Each source's weight multiplier for ``dist_peak`` / ``rrf_peak``: its peak over the mean
    peak of the sources where it is defined (1.0 where it is not, or when no source peaks)."""
    peaks = {name: _peak(r) for name, r in ranked.items()}
    defined = [p for p in peaks.values() if p is not None]
    mean = sum(defined) / len(defined) if defined else 0.0
    if mean <= 0:
        return dict.fromkeys(ranked, 1.0)
    return {name: 1.0 if p is None else p / mean for name, p in peaks.items()}


def fuse(
    rankings: Mapping[str, Sequence[tuple[str, float]]],
    method: str = "rrf",
    *,
    k: float = 60,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[Hit]:
    """Fuse ranked lists by ``method`` (see the module docstring for the formulas).

    Args:
        rankings: Source name -> ``(doc_id, source_score)`` pairs, best first (higher scores are
            better for ``relative_score`` / ``dist_based``).
        method: One of :data:`FUSION_METHODS`.
        k: RRF constant (60 in the paper; unused by the score-based methods).
        weights: Per-source multipliers (default 1.0; a source missing here gets 1.0).
        limit: Keep only the best ``limit`` hits.

    Returns:
        Hits best first, ``rank`` 1-based, ``score`` the fused score and ``sources[name]`` the
        document's rank and raw score in each source that returned it. ``text`` / ``metadata``
        are left empty for the caller to fill.

    Raises:
        TypeError: ``rankings`` / ``weights`` are not mappings, or a pair is malformed.
        ValueError: Unknown method, ``k`` < 0, a negative or non-finite weight, a weight for an
            unknown source, ``limit`` <= 0, or an id that is not a non-empty string.
    """
    if method not in FUSION_METHODS:
        raise ValueError(
            f"Unknown fusion method {method!r}; choose one of: {', '.join(FUSION_METHODS)}."
        )
    _check(rankings, k, weights, limit)
    weights = weights or {}
    fused: dict[str, float] = {}
    best_rank: dict[str, int] = {}
    sources: dict[str, dict[str, SourceHit]] = {}
    ranked_by = {name: _ranked(name, ranking) for name, ranking in rankings.items()}
    peaks = peak_multipliers(ranked_by) if method in PEAK_METHODS else {}
    for name, ranked in ranked_by.items():
        w = float(weights.get(name, 1.0)) * peaks.get(name, 1.0)
        for (doc_id, rank, score), part in zip(
            ranked, _contributions(ranked, method, k), strict=True
        ):
            fused[doc_id] = fused.get(doc_id, 0.0) + w * part
            best_rank[doc_id] = min(rank, best_rank.get(doc_id, rank))
            sources.setdefault(doc_id, {})[name] = SourceHit(rank=rank, score=score)
    order = sorted(fused, key=lambda d: (-fused[d], best_rank[d], d))
    if limit is not None:
        order = order[:limit]
    return [
        Hit(id=doc_id, score=fused[doc_id], rank=i, sources=sources[doc_id])
        for i, doc_id in enumerate(order, start=1)
    ]


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[tuple[str, float]]],
    *,
    k: float = 60,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[Hit]:
    """Fuse ranked lists by Reciprocal Rank Fusion (:func:`fuse` with ``method="rrf"``).

    Example:
        >>> hits = reciprocal_rank_fusion({"dense": [("a", 0.9), ("b", 0.8)], "bm25": [("b", 7.0)]})
        >>> [h.id for h in hits], round(hits[0].score, 5)
        (['b', 'a'], 0.03252)
    """
    return fuse(rankings, "rrf", k=k, weights=weights, limit=limit)


def relative_score_fusion(
    rankings: Mapping[str, Sequence[tuple[str, float]]],
    *,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[Hit]:
    """Min-max scale each source's scores to [0, 1], then sum with ``weights`` (Weaviate's
    ``relativeScoreFusion``; :func:`fuse` with ``method="relative_score"``)."""
    return fuse(rankings, "relative_score", weights=weights, limit=limit)


def distribution_based_fusion(
    rankings: Mapping[str, Sequence[tuple[str, float]]],
    *,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[Hit]:
    """Scale each source's scores over mean ± 3σ, then sum with ``weights`` (Mazzeschi's
    distribution-based score fusion; :func:`fuse` with ``method="dist_based"``)."""
    return fuse(rankings, "dist_based", weights=weights, limit=limit)
