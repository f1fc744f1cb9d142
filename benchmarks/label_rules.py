"""Confidence rules for labelling questions, and the round-trip filter's k, on judged questions.

For ``adapt --queries`` the base hybrid retriever labels each question with its top passage and
a rule decides whether to trust it (:class:`simcse_rag.adapt_questions.LabelRule`). For each
candidate rule this prints, over every judged question of a set, the **coverage** (share of
questions kept) and the **precision** (share of kept labels the qrels call relevant).

``--half train`` scores the rules instead on the training half of ``benchmarks/adapt.py``'s
seeded split (the questions ``ours-queries`` labels, the corpus as that script loads it), with a
third column: **informativeness**, the share of kept labels the dense leg alone does not rank
first. A label dense already ranks first teaches the dense model little; when both legs must
agree (leg rank 1) no kept label is informative. "Informative right" counts the kept labels that
are both informative and relevant.

For the generator route, a generated pair is kept when its passage ranks within the top ``k`` of
the base hybrid for its question (:func:`simcse_rag.adapt_questions.round_trip_filter`). Real
(question, relevant passage) pairs stand in for good generated pairs; the same questions paired
with a plausible wrong passage (the best-ranked BM25 hit the qrels do not judge relevant) stand in
for bad ones, and the same questions with a random passage for unrelated ones. For each ``k`` it
prints the share of good pairs kept, the precision of the kept pool (one plausible wrong pair per
question beside the good ones) and the share of unrelated pairs kept.

The base model is all-MiniLM-L6-v2 with the passage vectors of ``benchmarks/retrieval.py
--cache-dir`` (``--cache-dir``, default ``/root/simcse-cache/retrieval``; they are encoded at the
model's own token limit, adapt encodes at 128).

Run::

    python benchmarks/label_rules.py                       # tatqa_fin_dev and liveqa_medquad
    python benchmarks/label_rules.py --datasets tatqa_fin_dev --json /tmp/rules.json
    python benchmarks/label_rules.py --half train                # adapt.py's training half
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simcse_rag.adapt_questions import LabelRule, relative_margin  # noqa: E402
from simcse_rag.corpus import read_corpus  # noqa: E402
from simcse_rag.datasets import load_query_set  # noqa: E402
from simcse_rag.encoder import SimCSEEncoder  # noqa: E402
from simcse_rag.index.config import HybridConfig  # noqa: E402
from simcse_rag.index.hybrid import HybridRetriever  # noqa: E402

SPLITS = {"liveqa_medquad": "test", "tatqa_fin_dev": "dev"}
RULES: dict[str, LabelRule] = {
    "hybrid top-1, no check": LabelRule(max_leg_rank=None),
    "dense top-1 == BM25 top-1 (leg rank 1)": LabelRule(max_leg_rank=1),
    "top in both legs' top 2": LabelRule(max_leg_rank=2),
    "top in both legs' top 3": LabelRule(max_leg_rank=3),
    "top in both legs' top 5": LabelRule(max_leg_rank=5),
    "top in both legs' top 10": LabelRule(max_leg_rank=10),
    "margin >= 0.05": LabelRule(max_leg_rank=None, min_margin=0.05),
    "margin >= 0.1": LabelRule(max_leg_rank=None, min_margin=0.1),
    "margin >= 0.2": LabelRule(max_leg_rank=None, min_margin=0.2),
    "margin >= 0.3": LabelRule(max_leg_rank=None, min_margin=0.3),
    "both legs' top 3 and margin >= 0.05": LabelRule(max_leg_rank=3, min_margin=0.05),
    "BM25 top-1 == hybrid top-1 (dense unchecked)": LabelRule(max_leg_rank=None, max_bm25_rank=1),
    "BM25 top-1, in dense top 3": LabelRule(max_leg_rank=None, max_bm25_rank=1, max_dense_rank=3),
    "BM25 top-1, in dense top 10": LabelRule(max_leg_rank=None, max_bm25_rank=1, max_dense_rank=10),
    "dense top-1 == hybrid top-1 (BM25 unchecked)": LabelRule(max_leg_rank=None, max_dense_rank=1),
}
KS = (1, 2, 3, 5, 10, 20, 100)


def base_retriever(
    data: Path, name: str, cache_dir: Path, model: str | None, corpus: list | None = None
) -> Any:
    encoder = SimCSEEncoder.from_pretrained(model, device="cpu")
    retriever = HybridRetriever(encoder, HybridConfig(dense_index="flat"))
    taken = retriever.load_cache(cache_dir / name)
    print(f"# {name}: {taken} cached passage vectors", file=sys.stderr, flush=True)
    retriever.add(corpus if corpus is not None else read_corpus(data / name / "corpus.jsonl"))
    return retriever


def training_half(data: Path, name: str, corpus_size: int) -> tuple[dict, dict, list]:
    """The questions, qrels and corpus ``benchmarks/adapt.py`` trains ``ours-queries`` on."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from adapt import load_dataset

    ds = load_dataset(data, name, corpus_size, seed=0)
    return ds["train_queries"], ds["train_qrels"], ds["corpus"]


def informative(hits: list) -> bool:
    """The dense leg alone does not rank the hybrid top passage first (absent counts as below)."""
    dense = hits[0].sources.get("dense")
    return dense is None or dense.rank > 1


def rule_table(retriever: Any, queries: dict[str, str], qrels: dict) -> list[dict]:
    qids = sorted(queries)
    hits = retriever.search_batch([queries[q] for q in qids], k=2, mode="hybrid")
    rows = []
    for name, rule in RULES.items():
        kept = [(q, h) for q, h in zip(qids, hits, strict=True) if rule.trusts(h)]
        right = [qrels[q].get(h[0].id, 0) >= 1 for q, h in kept]
        telling = [informative(h) for _, h in kept]
        rows.append(
            {
                "rule": name,
                "questions": len(qids),
                "kept": len(kept),
                "coverage": len(kept) / len(qids),
                "precision": sum(right) / len(kept) if kept else float("nan"),
                "right_labels": sum(right),
                "informative": sum(telling) / len(kept) if kept else float("nan"),
                "informative_right": sum(r and t for r, t in zip(right, telling, strict=True)),
            }
        )
    margins = [relative_margin(h) for h in hits]
    print(f"#   median relative margin {sorted(margins)[len(margins) // 2]:.3f}", file=sys.stderr)
    return rows


def round_trip_table(retriever: Any, queries: dict[str, str], qrels: dict) -> list[dict]:
    qids = sorted(queries)
    texts = [queries[q] for q in qids]
    depth = max(KS)
    hybrid = retriever.search_batch(texts, k=depth, mode="hybrid")
    bm25 = retriever.search_batch(texts, k=20, mode="bm25")
    good: list[int | None] = []  # rank of each relevant passage in the hybrid list
    bad: list[int | None] = []  # rank of each question's plausible wrong passage
    unrelated: list[int | None] = []  # rank of a random passage the qrels do not judge
    rng = random.Random(0)
    ids = [p.id for p in retriever.passages]
    for q, hits, sparse in zip(qids, hybrid, bm25, strict=True):
        ranks = {h.id: h.rank for h in hits}
        relevant = {d for d, g in qrels[q].items() if g >= 1}
        good += [ranks.get(d) for d in relevant]
        wrong = next((h.id for h in sparse if h.id not in qrels[q]), None)
        if wrong is not None:
            bad.append(ranks.get(wrong))
        other = rng.choice(ids)
        while other in qrels[q]:
            other = rng.choice(ids)
        unrelated.append(ranks.get(other))
    rows = []
    for k in KS:
        kept_good = sum(r is not None and r <= k for r in good)
        kept_bad = sum(r is not None and r <= k for r in bad)
        rows.append(
            {
                "k": k,
                "good_pairs": len(good),
                "good_kept": kept_good / len(good),
                "bad_pairs": len(bad),
                "bad_kept": kept_bad / len(bad) if bad else float("nan"),
                "precision": kept_good / (kept_good + kept_bad) if kept_good + kept_bad else 0,
                "unrelated_kept": sum(r is not None and r <= k for r in unrelated) / len(unrelated),
            }
        )
    return rows


def markdown(name: str, rules: list[dict], trips: list[dict]) -> str:
    lines = [
        f"#### {name}: labelling rules ({rules[0]['questions']} judged questions)",
        "",
        "| rule | kept | coverage | precision | informative | informative right |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rules:
        lines.append(
            f"| {r['rule']} | {r['kept']} | {100 * r['coverage']:.1f}% | "
            f"{100 * r['precision']:.1f}% | {100 * r['informative']:.1f}% | "
            f"{r['informative_right']} |"
        )
    if not trips:
        return "\n".join(lines)
    lines += [
        "",
        f"#### {name}: round-trip filter ({trips[0]['good_pairs']} real pairs, "
        f"{trips[0]['bad_pairs']} plausible wrong pairs)",
        "",
        "| k | real pairs kept | wrong pairs kept | precision of kept (1:1 pool) | random kept |",
        "|---:|---:|---:|---:|---:|",
    ]
    for t in trips:
        lines.append(
            f"| {t['k']} | {100 * t['good_kept']:.1f}% | {100 * t['bad_kept']:.1f}% | "
            f"{100 * t['precision']:.1f}% | {100 * t['unrelated_kept']:.1f}% |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--datasets", default="tatqa_fin_dev,liveqa_medquad")
    parser.add_argument("--cache-dir", type=Path, default=Path("/root/simcse-cache/retrieval"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--half",
        choices=("all", "train"),
        default="all",
        help="train: the rules alone, on benchmarks/adapt.py's training half (its corpus too)",
    )
    parser.add_argument("--corpus-size", type=int, default=0, help="with --half train")
    args = parser.parse_args()
    results = {}
    for name in args.datasets.split(","):
        if args.half == "train":
            queries, qrels, corpus = training_half(args.data, name, args.corpus_size)
        else:
            judged = load_query_set(args.data / name, SPLITS[name]).with_relevant()
            queries, qrels, corpus = judged.queries, judged.qrels, None
        retriever = base_retriever(args.data, name, args.cache_dir, args.model, corpus)
        rules = rule_table(retriever, queries, qrels)
        trips = round_trip_table(retriever, queries, qrels) if args.half == "all" else []
        results[name] = {"rules": rules, "round_trip": trips}
        print(markdown(name, rules, trips) + "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
