"""Retrieval metrics (nDCG@k, Recall@k, MRR@k) over BEIR-layout data (read by
:mod:`simcse_rag.datasets`).

Definitions follow BEIR / pytrec_eval: nDCG uses linear gains (the qrels grade) with a
``log2(rank + 1)`` discount, the ideal ranking taken from all judged documents; Recall@k and
MRR@k count a document as relevant when its grade is >= 1. Only queries with at least one
relevant document are evaluated; a query missing from the run scores 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence

from simcse_rag import _validate

# The BEIR reader moved to simcse_rag.datasets; its names stay importable from here.
from simcse_rag.datasets import BeirData, load_beir, load_qrels

__all__ = [
    "BeirData",
    "Qrels",
    "evaluate_run",
    "load_beir",
    "load_qrels",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
]

Qrels = Mapping[str, Mapping[str, int]]


def _relevant(judged: Mapping[str, int]) -> set[str]:
    return {d for d, g in judged.items() if g >= 1}


def ndcg_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranking given graded judgments (linear gain, log2 discount)."""
    dcg = sum(max(judged.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Fraction of the relevant documents (grade >= 1) found in the top ``k``."""
    relevant = _relevant(judged)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document within the top ``k`` (0 if none)."""
    relevant = _relevant(judged)
    for i, d in enumerate(ranking[:k]):
        if d in relevant:
            return 1.0 / (i + 1)
    return 0.0


_METRICS = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k}


def evaluate_run(
    run: Mapping[str, Sequence[str]],
    qrels: Qrels,
    ks: Iterable[int] = (10, 100),
    metrics: Iterable[str] = ("ndcg", "recall", "mrr"),
) -> dict[str, float]:
    """Average metrics over the judged queries that have a relevant document.

    Args:
        run: Query id -> ranked doc ids (best first). Duplicate ids keep their first position.
        qrels: Query id -> {doc id: grade}.
        ks: Cut-offs.
        metrics: Any of ``ndcg``, ``recall``, ``mrr``.

    Returns:
        ``{"ndcg@10": ..., "recall@100": ..., ..., "queries": n}`` (floats, ``queries`` an int).

    Raises:
        ValueError: A cut-off <= 0, an unknown metric, or no query with a relevant document.
    """
    ks = [_validate.positive_int(k, "cut-off k") for k in ks]
    metrics = list(metrics)
    for m in metrics:
        if m not in _METRICS:
            raise ValueError(f"Unknown metric {m!r}; choose from: {', '.join(_METRICS)}.")
    qids = [q for q, judged in qrels.items() if _relevant(judged)]
    if not qids:
        raise ValueError("qrels hold no query with a relevant document (grade >= 1).")
    out: dict[str, float] = {}
    rankings = {q: list(dict.fromkeys(run.get(q, ()))) for q in qids}
    for m in metrics:
        for k in ks:
            out[f"{m}@{k}"] = statistics.fmean(_METRICS[m](rankings[q], qrels[q], k) for q in qids)
    out["queries"] = len(qids)
    return out
