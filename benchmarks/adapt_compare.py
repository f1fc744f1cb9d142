"""Per-question comparison of adapted models on ``benchmarks/adapt.py``'s held-out half.

Each model (``LABEL=FOLDER``, or ``LABEL=base`` for the model as shipped; ``LABEL=FOLDER@CACHE``
reuses a run's embedding cache, e.g. ``--out``'s ``cache`` folder, so nothing is re-encoded when
the token limit matches) is evaluated on the same held-out questions as the benchmark (same
dataset, ``--corpus-size`` and ``--seed``). Printed: nDCG@10 per model and mode, and for each model
against the first (the reference) the mean per-question difference with its 95% paired
bootstrap interval, which says whether a gap is beyond what the held-out questions can tell.

Run::

    python benchmarks/adapt_compare.py --dataset tatqa_fin_dev \\
        pairs=/tmp/bench/tatqa_fin_dev-ours-pairs@/tmp/bench/cache \\
        standin=/tmp/bench/tatqa_fin_dev-ours-generated-standin@/tmp/bench/cache base=base
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from adapt_data import load_dataset  # noqa: E402

from simcse_rag.adapt_retrieval import build_retriever  # noqa: E402
from simcse_rag.encoder import SimCSEEncoder  # noqa: E402
from simcse_rag.evaluation.retrieval import evaluate_run  # noqa: E402

MODES = ("dense", "hybrid")


def per_question(retriever: object, eval_set: object, mode: str) -> np.ndarray:
    """nDCG@10 of each held-out question (sorted by id)."""
    qids = sorted(eval_set.qrels)
    hits = retriever.search_batch([eval_set.queries[q] for q in qids], k=10, mode=mode)
    return np.array(
        [
            evaluate_run({q: [h.id for h in hs]}, {q: eval_set.qrels[q]}, ks=(10,))["ndcg@10"]
            for q, hs in zip(qids, hits, strict=True)
        ]
    )


def bootstrap(diff: np.ndarray, rounds: int = 5000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean of ``diff`` over resampled questions."""
    rng = np.random.default_rng(seed)
    means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(rounds)]
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="LABEL=FOLDER[@CACHE] or LABEL=base")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--dataset", default="tatqa_fin_dev")
    parser.add_argument("--corpus-size", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ds = load_dataset(args.data, args.dataset, args.corpus_size, args.seed)
    scores: dict[tuple[str, str], np.ndarray] = {}
    labels = []
    for spec in args.models:
        label, _, where = spec.partition("=")
        folder, _, cache = where.partition("@")
        encoder = SimCSEEncoder.from_pretrained(None if folder == "base" else folder, device="cpu")
        retriever = build_retriever(ds["corpus"], encoder, cache_dir=cache or None)
        labels.append(label)
        for mode in MODES:
            scores[label, mode] = per_question(retriever, ds["eval_set"], mode)
    n = len(ds["eval_set"].qrels)
    print(f"## {args.dataset}: {n} held-out questions (seed {args.seed}); reference {labels[0]}\n")
    print("| model | mode | nDCG@10 | minus reference | 95% interval | questions differing |")
    print("|---|---|---:|---:|---|---:|")
    for label in labels:
        for mode in MODES:
            diff = scores[label, mode] - scores[labels[0], mode]
            lo, hi = bootstrap(diff)
            moved = int((np.abs(diff) > 1e-9).sum())
            print(
                f"| {label} | {mode} | {100 * scores[label, mode].mean():.2f} | "
                f"{100 * diff.mean():+.2f} | [{100 * lo:+.2f}, {100 * hi:+.2f}] | {moved} |"
            )


if __name__ == "__main__":
    main()
