"""The data of the adaptation benchmark (``benchmarks/adapt.py``): the seeded 50/50 query split
of a shared BEIR set, the library settings the command line selects, stand-in noise, and the
base model's retriever over the corpus."""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simcse_rag.adapt import AdaptConfig, EvalSet  # noqa: E402
from simcse_rag.adapt_questions import LabelRule  # noqa: E402
from simcse_rag.adapt_retrieval import build_retriever, encoder_max_length  # noqa: E402
from simcse_rag.corpus import read_corpus  # noqa: E402
from simcse_rag.datasets import load_query_set  # noqa: E402
from simcse_rag.encoder import SimCSEEncoder  # noqa: E402
from simcse_rag.mining import MiningConfig  # noqa: E402
from simcse_rag.pairs import TrainingPair, split_queries  # noqa: E402

SPLITS = {"liveqa_medquad": "test", "tatqa_fin_dev": "dev", "zh_med_qa": "dev"}


def norm(text: str) -> str:
    return " ".join(text.split()).lower()


def load_dataset(data: Path, name: str, corpus_size: int, seed: int) -> dict:
    folder = data / name
    split = SPLITS[name]
    corpus = read_corpus(folder / "corpus.jsonl")
    judged = load_query_set(folder, split)
    qrels, queries = judged.qrels, judged.queries
    if corpus_size and len(corpus) > corpus_size:
        judged = {d for docs in qrels.values() for d in docs}
        keep = [p for p in corpus if p.id in judged]
        others = [p for p in corpus if p.id not in judged]
        random.Random(seed).shuffle(others)
        keep += others[: max(0, corpus_size - len(keep))]
        kept = {p.id for p in keep}
        corpus = [p for p in corpus if p.id in kept]
    with_rel = [q for q, docs in qrels.items() if any(g >= 1 for g in docs.values())]
    train_ids, eval_ids = split_queries(with_rel, eval_fraction=0.5, seed=seed)
    # A training query whose text equals a held-out query's would leak it (TAT-QA repeats
    # questions across reports): drop it for every system (adapt() would drop it anyway).
    held_texts = {norm(queries[q]) for q in eval_ids}
    train_ids = [q for q in train_ids if norm(queries[q]) not in held_texts]
    eval_set = EvalSet(
        {q: queries[q] for q in eval_ids},
        {q: qrels[q] for q in eval_ids},
        f"{name} qrels/{split}.tsv, held-out half of the queries (seed {seed})",
    )
    return {
        "folder": folder,
        "split": split,
        "corpus": corpus,
        "train_ids": train_ids,
        "train_queries": {q: queries[q] for q in train_ids},
        "train_qrels": {q: qrels[q] for q in train_ids},
        "eval_set": eval_set,
    }


def adapt_config(
    args: argparse.Namespace, strategy: str | None = None, round_trip_k: int | None = None
) -> AdaptConfig:
    given = (args.label_leg_rank, args.label_dense_rank, args.label_bm25_rank)
    rule = LabelRule(
        max_leg_rank=args.label_leg_rank or None,
        min_margin=args.label_margin,
        max_dense_rank=args.label_dense_rank or None,
        max_bm25_rank=args.label_bm25_rank or None,
    )
    return AdaptConfig(
        label_rule=rule if any(v is not None for v in given) else AdaptConfig.label_rule,
        round_trip_k=round_trip_k or AdaptConfig.round_trip_k,
        round_trip_model=args.round_trip_model,
        strategy=strategy or args.strategy,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        train_max_length=args.train_max_length,
        encode_max_length=args.encode_max_length,
        max_pairs=args.max_pairs,
        rounds=args.rounds,
        merge_weight=args.merge_weight,
        mining=MiningConfig(
            num_negatives=args.num_negatives,
            range_min=args.range_min,
            range_max=args.range_max,
            mode=args.mining_mode,
        ),
        seed=args.seed,
    )


def noise_pairs(ds: dict, labelled: list, fraction: float, seed: int) -> list:
    """For a seeded ``fraction`` of the training questions, one extra pair with a random passage
    their qrels do not judge: a generated question its passage does not answer."""
    if not fraction:
        return []
    rng = random.Random(seed)
    questions = sorted({(p.query_id, p.query) for p in labelled})
    chosen = rng.sample(questions, round(fraction * len(questions)))
    out = []
    for qid, text in chosen:
        judged = ds["train_qrels"].get(qid, {})
        passage = rng.choice(ds["corpus"])
        while passage.id in judged:
            passage = rng.choice(ds["corpus"])
        out.append(TrainingPair(f"noise:{qid}", text, passage.text, passage.id))
    return out


@contextlib.contextmanager
def base_retriever(
    corpus: list, model: str | None, max_length: int | None, cache_dir: Path | None
) -> Iterator[object]:
    """The base model's hybrid retriever over ``corpus``, encoded and searched inside the block
    at ``max_length`` tokens (``None``: the model's own limit); vectors kept in ``cache_dir``."""
    encoder = SimCSEEncoder.from_pretrained(model, device="cpu")
    with encoder_max_length(encoder, max_length):
        yield build_retriever(corpus, encoder, cache_dir=cache_dir)
