"""Confidence rules for labelling questions, and the round-trip filter's k, on judged questions.

For ``adapt --queries`` the base hybrid retriever labels each question with its top passage and
a rule decides whether to trust it (:class:`simcse_rag.adapt_questions.LabelRule`). For each
candidate rule this prints, over every judged question of a set, the **coverage** (share of
questions kept) and the **precision** (share of kept labels the qrels call relevant).

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
}
KS = (1, 2, 3, 5, 10, 20, 100)


def base_retriever(data: Path, name: str, cache_dir: Path, model: str | None) -> Any:
    encoder = SimCSEEncoder.from_pretrained(model, device="cpu")
    retriever = HybridRetriever(encoder, HybridConfig(dense_index="flat"))
    taken = retriever.load_cache(cache_dir / name)
    print(f"# {name}: {taken} cached passage vectors", file=sys.stderr, flush=True)
    retriever.add(read_corpus(data / name / "corpus.jsonl"))
    return retriever


def rule_table(retriever: Any, queries: dict[str, str], qrels: dict) -> list[dict]:
    qids = sorted(queries)
    hits = retriever.search_batch([queries[q] for q in qids], k=2, mode="hybrid")
    rows = []
    for name, rule in RULES.items():
        kept = [(q, h) for q, h in zip(qids, hits, strict=True) if rule.trusts(h)]
        right = sum(qrels[q].get(h[0].id, 0) >= 1 for q, h in kept)
        rows.append(
            {
                "rule": name,
                "questions": len(qids),
                "kept": len(kept),
                "coverage": len(kept) / len(qids),
                "precision": right / len(kept) if kept else float("nan"),
                "right_labels": right,
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
        "| rule | kept | coverage | precision |",
        "|---|---:|---:|---:|",
    ]
    for r in rules:
        lines.append(
            f"| {r['rule']} | {r['kept']} | {100 * r['coverage']:.1f}% | "
            f"{100 * r['precision']:.1f}% |"
        )
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
    args = parser.parse_args()
    results = {}
    for name in args.datasets.split(","):
        judged = load_query_set(args.data / name, SPLITS[name]).with_relevant()
        retriever = base_retriever(args.data, name, args.cache_dir, args.model)
        rules = rule_table(retriever, judged.queries, judged.qrels)
        trips = round_trip_table(retriever, judged.queries, judged.qrels)
        results[name] = {"rules": rules, "round_trip": trips}
        print(markdown(name, rules, trips) + "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
