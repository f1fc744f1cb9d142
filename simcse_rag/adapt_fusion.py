"""The adapted retriever's fusion setting, chosen on pairs held back from training (issue #21).

An adapted dense leg can end up far stronger than the base model's, and the fusion weights chosen
for the base model then waste it (after labelled adaptation the dense leg alone beat the hybrid
on two medical sets). So :func:`simcse_rag.adapt.adapt`:

1. holds back a seeded share of the *training* queries before training
   (:func:`hold_back_validation`; never the evaluation queries, which stay for the report);
2. after training, scores a small fixed set of fusion settings (:data:`DENSE_WEIGHTS` x
   :data:`METHODS`, the library default among them) on those validation queries with the adapted
   retriever, and keeps the best only if it beats the library default beyond noise (the 95%
   paired-bootstrap interval of the per-query difference lies above 0; :func:`choose_fusion`),
   since a setting ahead within noise on the validation queries fell behind the default on the
   evaluation queries (docs/benchmarks.md, "adapt chooses the fusion");
3. saves it with the model (``simcse_rag.json``, :mod:`simcse_rag.index.model_fusion`), so a
   retriever over the model searches with it unless the user chooses a setting.

The validation queries cost training pairs; with too few queries the choice would be noise, so
below :data:`MIN_VALIDATION_QUERIES` nothing is held back and the library default stays.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simcse_rag.datasets import QuerySet
from simcse_rag.index.config import HybridConfig
from simcse_rag.index.fusion import DEFAULT_FUSION
from simcse_rag.index.model_fusion import write_model_fusion
from simcse_rag.pairs import TrainingPair, split_queries
from simcse_rag.pseudo_queries import is_pseudo_query

logger = logging.getLogger(__name__)

#: Share of the training queries held back for the choice, at most :data:`MAX_VALIDATION_QUERIES`.
VALIDATION_FRACTION = 0.2
MAX_VALIDATION_QUERIES = 200
#: Fewer validation queries than this and the choice is not made (the default stays).
MIN_VALIDATION_QUERIES = 20
#: Dense weights tried (BM25 weight 1): from BM25-leaning to nearly dense alone.
DENSE_WEIGHTS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
#: Fusion methods tried: the library default, and rank- and score-based fusion.
METHODS: tuple[str, ...] = tuple(dict.fromkeys((DEFAULT_FUSION, "rrf", "dist_based")))
#: Hits per leg before fusion, as the library's searches use.
CANDIDATES = 100


@dataclass(frozen=True)
class FusionChoice:
    """The chosen setting and what it was chosen on.

    Attributes:
        fusion: Fusion method.
        rrf_k: RRF constant.
        weights: Weight of each source.
        validation_queries: Held-back queries it was chosen on (0: not chosen, the default).
        validation_pairs: Their (query, passage) pairs, none of them trained on.
        scores: nDCG@10 on the validation queries of every setting tried, by label.
        default: Label of the library default.
        evaluation: Hybrid metrics on the evaluation queries with the chosen and the default
            setting (``{"chosen": {...}, "default": {...}}``), filled by :func:`choose_fusion`.
        kept_default: Why no setting was tried, when that was decided before (for the report;
            empty: too few training queries, or a choice was made).
    """

    fusion: str
    rrf_k: float
    weights: Mapping[str, float]
    validation_queries: int = 0
    validation_pairs: int = 0
    scores: Mapping[str, float] = field(default_factory=dict)
    default: str = ""
    evaluation: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    kept_default: str = ""

    def label(self) -> str:
        """E.g. ``rrf, dense weight 2``."""
        return setting_label(self.fusion, self.weights["dense"])

    def to_report(self) -> dict[str, Any]:
        """The ``fusion`` block of adapt's report."""
        return {
            "chosen": self.label(),
            "fusion": self.fusion,
            "rrf_k": self.rrf_k,
            "weights": dict(self.weights),
            "validation_queries": self.validation_queries,
            "validation_pairs": self.validation_pairs,
            "validation_ndcg@10": dict(self.scores),
            "default": self.default,
            "evaluation": {k: dict(v) for k, v in self.evaluation.items()},
            "kept_default": self.kept_default,
        }

    def save(self, folder: str | os.PathLike[str]) -> Path | None:
        """Write ``simcse_rag.json`` into the model folder (nothing when no choice was made)."""
        if not self.validation_queries:
            return None
        return write_model_fusion(
            folder,
            fusion=self.fusion,
            rrf_k=self.rrf_k,
            weights=self.weights,
            chosen_on=f"nDCG@10 on {self.validation_queries} training queries held back from "
            "training by simcse-rag adapt",
        )


def setting_label(fusion: str, dense_weight: float) -> str:
    """Human-readable name of a fusion setting."""
    return f"{fusion}, dense weight {dense_weight:g}"


def hold_back_validation(prepared: Any, seed: int) -> tuple[Any, QuerySet | None]:
    """Split :data:`VALIDATION_FRACTION` of the training queries off ``prepared.train``.

    Pairs of one query (pseudo-queries: of one passage) stay together, as in adapt's held-out
    split. Below :data:`MIN_VALIDATION_QUERIES` nothing is held back.

    Args:
        prepared: adapt's prepared pairs (a dataclass with a ``train`` list of pairs).
        seed: Seed of the split.

    Returns:
        ``prepared`` with the remaining training pairs, and the validation queries (``None``
        when nothing was held back).
    """
    pairs: list[TrainingPair] = [p for p in prepared.train if p.positive_id]
    groups = sorted({_group(p) for p in pairs})
    share = min(VALIDATION_FRACTION, MAX_VALIDATION_QUERIES / max(len(groups), 1))
    if round(len(groups) * share) < MIN_VALIDATION_QUERIES:
        logger.info(
            "%d training queries: too few to hold back %d for choosing the fusion setting; "
            "the library default stays",
            len(groups),
            MIN_VALIDATION_QUERIES,
        )
        return prepared, None
    _, held = split_queries(groups, eval_fraction=share, seed=seed)
    held_set = set(held)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for p in pairs:
        if _group(p) in held_set:
            queries[p.query_id] = p.query
            qrels.setdefault(p.query_id, {})[p.positive_id] = 1
    train = [p for p in prepared.train if not (p.positive_id and _group(p) in held_set)]
    validation = QuerySet(queries, qrels, f"{len(held)} training queries held back (seed {seed})")
    return dataclasses.replace(prepared, train=train), validation


def _group(p: TrainingPair) -> str:
    return f"passage:{p.positive_id}" if is_pseudo_query(p) else p.query_id


def _per_query_ndcg(retriever: Any, config: HybridConfig, queries: QuerySet) -> dict[str, float]:
    from simcse_rag.evaluation.retrieval import ndcg_at_k

    qids = sorted(queries.qrels)
    hits = retriever.with_query_settings(fusion=config.fusion, weights=config.weights).search_batch(
        [queries.queries[q] for q in qids], k=10, mode="hybrid", candidates=CANDIDATES
    )
    return {
        q: ndcg_at_k([h.id for h in hs], queries.qrels[q], 10)
        for q, hs in zip(qids, hits, strict=True)
    }


def beats_beyond_noise(better: Mapping[str, float], base: Mapping[str, float]) -> bool:
    """Whether the 95% paired-bootstrap interval (2,000 resamples, seeded) of the per-query
    difference ``better - base`` lies above 0."""
    diff = np.array([better[q] - base[q] for q in sorted(base)])
    if diff.size == 0:
        return False
    rng = np.random.default_rng(0)
    means = diff[rng.integers(0, diff.size, size=(2000, diff.size))].mean(axis=1)
    return bool(np.percentile(means, 2.5) > 0)


def _hybrid_metrics(
    retriever: Any, config: HybridConfig, queries: QuerySet, ks: Sequence[int]
) -> dict[str, float]:
    from simcse_rag.evaluation.retrieval import evaluate_run

    qids = sorted(queries.qrels)
    hits = retriever.with_query_settings(fusion=config.fusion, weights=config.weights).search_batch(
        [queries.queries[q] for q in qids],
        k=max(ks),
        mode="hybrid",
        candidates=max(CANDIDATES, max(ks)),
    )
    run = {q: [h.id for h in hs] for q, hs in zip(qids, hits, strict=True)}
    return evaluate_run(run, queries.qrels, ks=ks)


def choose_fusion(
    retriever: Any,
    validation: QuerySet | None,
    eval_set: QuerySet | None = None,
    *,
    ks: Sequence[int] = (10, 100),
    kept_default: str = "",
) -> FusionChoice:
    """The best fusion setting on ``validation`` for the adapted ``retriever``.

    Args:
        retriever: The adapted :class:`~simcse_rag.index.hybrid.HybridRetriever`.
        validation: Held-back training queries (``None``: keep the library default).
        eval_set: The evaluation queries: the chosen and the default setting are scored on them
            for the report (never used to choose).
        ks: Metric cut-offs of the report.
        kept_default: With ``validation=None``, why nothing was held back (for the report).

    Returns:
        The best setting on ``validation`` if it beats the library default beyond noise
        (:func:`beats_beyond_noise`), else the library default.
    """
    default = HybridConfig()
    default_label = setting_label(default.fusion, default.weights["dense"])
    best, scores = default, {}
    if validation is not None:
        tried = [default] + [
            HybridConfig(fusion=m, weights={"dense": w, "bm25": 1.0})
            for m in METHODS
            for w in DENSE_WEIGHTS
        ]
        per_query: dict[str, dict[str, float]] = {}
        for config in tried:
            label = setting_label(config.fusion, config.weights["dense"])
            if label not in per_query:
                per_query[label] = _per_query_ndcg(retriever, config, validation)
                scores[label] = statistics.fmean(per_query[label].values())
        top = max(tried, key=lambda c: scores[setting_label(c.fusion, c.weights["dense"])])
        top_label = setting_label(top.fusion, top.weights["dense"])
        if beats_beyond_noise(per_query[top_label], per_query[default_label]):
            best = top
        logger.info("fusion chosen on %d validation queries: %s", len(validation.qrels), best)
    evaluation = {}
    if eval_set is not None:
        evaluation = {
            "chosen": _hybrid_metrics(retriever, best, eval_set, ks),
            "default": _hybrid_metrics(retriever, default, eval_set, ks),
        }
    return FusionChoice(
        fusion=best.fusion,
        rrf_k=best.rrf_k,
        weights=dict(best.weights),
        validation_queries=len(validation.qrels) if validation is not None else 0,
        validation_pairs=sum(map(len, validation.qrels.values())) if validation is not None else 0,
        scores=scores,
        default=default_label,
        evaluation=evaluation,
        kept_default=kept_default if validation is None else "",
    )


def report_lines(block: Mapping[str, Any] | None) -> list[str]:
    """Markdown lines for adapt's report.md (none when the report has no ``fusion`` block)."""
    if not block:
        return []
    if not block["validation_queries"]:
        why = block.get("kept_default") or "too few training queries to hold some back"
        return [
            "## Fusion setting",
            "",
            f"- {why}: the library default ({block['default']}) stays",
            "",
        ]
    lines = [
        "## Fusion setting (saved with the model in simcse_rag.json)",
        "",
        f"- chosen: **{block['chosen']}** (library default: {block['default']}), on "
        f"{block['validation_queries']} training queries held back from training",
    ]
    evaluation = block.get("evaluation") or {}
    if evaluation:
        chosen, default = evaluation["chosen"]["ndcg@10"], evaluation["default"]["ndcg@10"]
        lines.append(
            f"- hybrid nDCG@10 on the evaluation queries: {100 * chosen:.1f} with it, "
            f"{100 * default:.1f} with the library default"
        )
    best = statistics.fmean(block["validation_ndcg@10"].values())
    lines += [f"- validation nDCG@10 mean over the settings tried: {100 * best:.1f}", ""]
    return lines
