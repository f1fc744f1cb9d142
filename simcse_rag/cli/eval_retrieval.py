"""``simcse-rag eval retrieval``: nDCG@10 / Recall@100 / MRR@10 and latency on BEIR data."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from simcse_rag.cli._common import (
    add_model_argument,
    add_retriever_arguments,
    positive_int,
    retriever_config,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register ``eval retrieval``."""
    parser = subparsers.add_parser(
        "retrieval",
        help="retrieval quality and latency on a BEIR-layout folder",
        description="Index the corpus of a BEIR folder (corpus.jsonl, queries.jsonl, "
        "qrels/<split>.tsv), run every judged query and report nDCG@10, Recall@100, MRR@10 "
        "and per-query latency (query encoding included).",
    )
    parser.add_argument("--data", required=True, type=Path, help="BEIR folder")
    parser.add_argument("--split", default="test", help="qrels split (default: test)")
    add_model_argument(parser)
    parser.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "bm25"))
    parser.add_argument("--candidates", type=positive_int, default=100)
    add_retriever_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the index, search every query, print the metrics."""
    import numpy as np
    from tqdm.auto import tqdm

    from simcse_rag.cli._common import load_encoder
    from simcse_rag.evaluation.retrieval import evaluate_run, load_beir
    from simcse_rag.index.hybrid import HybridRetriever

    data = load_beir(args.data, args.split)
    if not data.corpus:
        raise ValueError(f"{args.data / 'corpus.jsonl'} is empty.")
    config = retriever_config(args)
    encoder = load_encoder(args)
    start = time.perf_counter()
    retriever = HybridRetriever.from_passages(
        data.corpus, encoder, config=config, show_progress=not args.no_progress
    )
    build_s = time.perf_counter() - start
    run_: dict[str, list[str]] = {}
    latencies: list[float] = []
    for qid, text in tqdm(data.queries.items(), disable=args.no_progress, desc="Searching"):
        t0 = time.perf_counter()
        hits = retriever.search(text, k=100, mode=args.mode, candidates=args.candidates)
        latencies.append((time.perf_counter() - t0) * 1000)
        run_[qid] = [h.id for h in hits]
    metrics = evaluate_run(run_, data.qrels, ks=(10, 100))
    result = {
        "ndcg@10": metrics["ndcg@10"],
        "recall@100": metrics["recall@100"],
        "mrr@10": metrics["mrr@10"],
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "queries": metrics["queries"],
        "mode": args.mode,
        "corpus": len(data.corpus),
        "build_s": build_s,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>12}: {value:.4f}" if isinstance(value, float) else f"{key:>12}: {value}")
    return 0
