"""The transfer rule of ``benchmarks/defaults.py`` (issue #21): is a default chosen on some
shared sets also good on the set left out, beyond the noise of its queries?

Per held-out set the candidate with the best mean nDCG@10 on the other sets is scored there;
the fold passes if the 95% paired-bootstrap interval of its per-query difference to the
baseline reaches 0 or above (not worse beyond noise) and it is >= our best single leg there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any  # a setting: defaults.Setting (hashable, with .label())

import numpy as np


def per_query_ndcg(run: dict[str, list[str]], qrels: Any) -> dict[str, float]:
    """nDCG@10 of each judged query (those :func:`evaluate_run` averages over)."""
    from simcse_rag.evaluation.retrieval import ndcg_at_k

    return {
        q: ndcg_at_k(run.get(q, []), judged, 10)
        for q, judged in qrels.items()
        if any(g >= 1 for g in judged.values())
    }


def paired_bootstrap(a: dict[str, float], b: dict[str, float], n: int = 2000) -> tuple[float, ...]:
    """Mean of ``a - b`` over the queries and its 95% percentile-bootstrap interval (seeded)."""
    diff = np.array([a[q] - b[q] for q in sorted(a)])
    rng = np.random.default_rng(0)
    means = diff[rng.integers(0, len(diff), size=(n, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def held_out_fold(
    table: dict[Any, dict[str, float]],
    candidates: Any,
    datasets: list[str],
    out: str,
    baseline: Any,
) -> dict[str, Any]:
    """One fold with ``out`` held out: the candidate with the best mean nDCG@10 on the other sets
    (ties: the better worst case), its score on ``out`` and ``baseline``'s."""
    others = [d for d in datasets if d != out]
    chosen = max(
        candidates,
        key=lambda s: (np.mean([table[s][d] for d in others]), min(table[s][d] for d in others)),
    )
    return {
        "held_out": out,
        "chosen": chosen,
        "chosen_score": table[chosen][out],
        "current_score": table[baseline][out],
    }


def setting_row(label: str, cells: list[float], *, worst: bool = False) -> str:
    """A Markdown table row: ``label``, one score per set, their mean (and minimum if ``worst``)."""
    tail = f" | {np.mean(cells):.4f} |" + (f" {min(cells):.4f} |" if worst else "")
    return f"| {label} | " + " | ".join(f"{c:.4f}" for c in cells) + tail


def transfer_folds(
    table: dict[Any, dict[str, float]],
    queries: dict[str, dict[Any, dict[str, float]]],
    legs: dict[str, dict[str, float]],
    datasets: list[str],
    candidates: Sequence[Any],
    baseline: Any,
) -> list[dict[str, Any]]:
    """The transfer rule per held-out set: the candidate with the best mean on the other sets,
    its held-out score, its paired-bootstrap difference to ``baseline`` and the verdict."""
    folds = []
    for out in datasets:
        fold = held_out_fold(table, candidates, datasets, out, baseline)
        chosen = fold["chosen"]
        mean, lo, hi = paired_bootstrap(queries[out][chosen], queries[out][baseline])
        best_leg = max(legs[out]["bm25"], legs[out][f"dense:{chosen.query_backend}"])
        folds.append(
            {
                **fold,
                "diff": mean,
                "ci": (lo, hi),
                "best_leg": best_leg,
                "passes": hi >= 0 and table[chosen][out] >= best_leg,
            }
        )
    return folds


def transfer_markdown(
    table: dict[Any, dict[str, float]],
    folds: list[dict[str, Any]],
    legs: dict[str, dict[str, float]],
    datasets: list[str],
    candidates: Sequence[Any],
    current: Any,
) -> str:
    """The candidates' table, the folds and the decision, in Markdown."""
    lines = ["", "### Transfer rule (candidates with no per-corpus constant)", ""]
    lines += [
        "| candidate | " + " | ".join(datasets) + " | mean |",
        "|---|" + "---:|" * (len(datasets) + 1),
    ]
    for s in candidates:
        mark = " (current default)" if s == current else ""
        lines.append(setting_row(s.label() + mark, [table[s][d] for d in datasets]))
    lines += [
        "",
        "| held out | chosen on the others | held-out | default before #21 | Δ [95% CI] "
        "| best leg | passes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for f in folds:
        lo, hi = f["ci"]
        lines.append(
            f"| {f['held_out']} | {f['chosen'].label()} | {f['chosen_score']:.4f} | "
            f"{f['current_score']:.4f} | {f['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}] | "
            f"{f['best_leg']:.4f} | {f['passes']} |"
        )
    eligible = [
        s
        for s in candidates
        if all(
            table[s][d] >= max(legs[d]["bm25"], legs[d][f"dense:{s.query_backend}"])
            for d in datasets
        )
    ]
    adopt = (
        max(eligible, key=lambda s: np.mean([table[s][d] for d in datasets])) if eligible else None
    )
    verdict = (
        f"adopt {adopt.label()}"
        if folds and all(f["passes"] for f in folds) and adopt is not None
        else "keep the current default"
    )
    lines += ["", f"- every fold passes: {all(f['passes'] for f in folds)}; decision: {verdict}"]
    return "\n".join(lines)
