"""False negatives of guessed labels: how often a mined negative is itself a relevant passage.

``adapt --queries`` labels each question with one passage (the base hybrid retriever's top one,
kept under ``AdaptConfig.label_rule``) and then mines negatives from the passages ranked next,
which is where the question's *other* relevant passages are. Labelled pairs know all their
positives and never mine them; guessed labels do not. On the training half of
``benchmarks/adapt.py``'s seeded split (its corpus, adapt's 128-token encoding, the base model)
this makes the pairs and mines one negative per pair as ``adapt`` does, then asks the hidden
qrels whether each negative is relevant, once with mining as configured and once skipping the
best-ranked candidates (``--skip``, as ``adapt`` now does for guessed labels).

Run::

    python benchmarks/label_negatives.py --datasets tatqa_fin_dev
    python benchmarks/label_negatives.py --datasets liveqa_medquad --corpus-size 2500 --dense-rank 0
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from adapt_data import base_retriever, load_dataset  # noqa: E402

from simcse_rag.adapt_config import AdaptConfig  # noqa: E402
from simcse_rag.adapt_questions import LabelRule, pairs_from_questions  # noqa: E402
from simcse_rag.adapt_retrieval import mine_with_retriever  # noqa: E402
from simcse_rag.mining import MiningConfig  # noqa: E402


def false_negatives(retriever: object, pairs: list, qrels: dict, mining: MiningConfig) -> dict:
    """Mine ``pairs`` and count the examples whose negatives include a relevant passage, split
    by whether the label itself is right."""
    counts = {"pairs": 0, "relevant_negative": 0, "right": 0, "right_fn": 0, "wrong_fn": 0}
    for example in mine_with_retriever(retriever, pairs, mining).examples:
        judged = qrels.get(example.query_id, {})
        right = judged.get(example.positive_id, 0) >= 1
        bad = any(judged.get(n.id, 0) >= 1 for n in example.negatives)
        counts["pairs"] += 1
        counts["relevant_negative"] += bad
        counts["right"] += right
        counts["right_fn" if right else "wrong_fn"] += bad
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--datasets", default="tatqa_fin_dev")
    parser.add_argument("--corpus-size", type=int, default=0)
    parser.add_argument("--model", default=None)
    parser.add_argument("--cache-dir", type=Path, default=None, help="corpus vectors kept here")
    parser.add_argument(
        "--dense-rank", type=int, default=None, help="label rule's dense limit (0: unchecked)"
    )
    parser.add_argument("--skip", type=int, default=10, help="best-ranked candidates skipped")
    args = parser.parse_args()
    config = AdaptConfig()
    rule = config.label_rule
    if args.dense_rank is not None:
        rule = dataclasses.replace(rule, max_dense_rank=args.dense_rank or None)
    print("| set | rule | pairs | right labels | skipped | negative relevant | right | wrong |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.datasets.split(","):
        ds = load_dataset(args.data, name, args.corpus_size, seed=0)
        limit = config.encode_max_length
        with base_retriever(ds["corpus"], args.model, limit, args.cache_dir) as retriever:
            made = pairs_from_questions(
                retriever, queries=ds["train_queries"], generated=None, rule=rule,
                round_trip_k=config.round_trip_k, eval_set=None, min_pairs=1,
            )  # fmt: skip
            for skip in (0, args.skip):
                mining = dataclasses.replace(config.mining, range_min=skip)
                c = false_negatives(retriever, made.pairs, ds["train_qrels"], mining)
                share = 100 * c["relevant_negative"] / max(c["pairs"], 1)
                relevant = f"{c['relevant_negative']} ({share:.1f}%)"
                print(
                    f"| {name} | {describe(rule)} | {c['pairs']} | {c['right']} | {skip} | "
                    f"{relevant} | {c['right_fn']} | {c['wrong_fn']} |",
                    flush=True,
                )


def describe(rule: LabelRule) -> str:
    return ", ".join(f"{leg} top {limit}" for leg, limit in rule.leg_limits().items())


if __name__ == "__main__":
    main()
