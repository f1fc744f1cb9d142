"""``simcse-rag eval retrieval``: nDCG@10 / Recall@100 / MRR@10 and latency on BEIR data.

The corpus is indexed for the run, or ``--index`` evaluates an index already built with
``simcse-rag index build``. A saved index must hold every corpus passage of the BEIR folder with
the same text (else the metrics would not be about this corpus); extra passages are allowed and
counted in the output: they can only push judged passages down, so the metrics are never
flattered by them. Options fixed when an index is built (``--dense-index``, ``--tokenizer``,
``--cache-dir``) are refused with ``--index`` unless they match it; query-time options
(``--rrf-k``, ``--dense-weight``, ``--batch-size``, ``--query-backend``, ``--mode``,
``--candidates``) apply to the loaded index, whose saved values are used otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simcse_rag.cli._common import (
    add_model_argument,
    add_retriever_arguments,
    positive_int,
)

if TYPE_CHECKING:
    from simcse_rag.schema import Passage

logger = logging.getLogger(__name__)

#: HybridConfig options fixed when an index is built, by flag.
_BUILD_OPTIONS = {
    "dense_index": "--dense-index",
    "tokenizer": "--tokenizer",
    "passage_backend": "--passage-backend",
}
#: HybridConfig options applied at query time, by flag.
_QUERY_OPTIONS = {
    "rrf_k": "--rrf-k",
    "dense_weight": "--dense-weight",
    "batch_size": "--batch-size",
    "query_backend": "--query-backend",
    "fusion": "--fusion",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register ``eval retrieval``."""
    parser = subparsers.add_parser(
        "retrieval",
        help="retrieval quality and latency on a BEIR-layout folder",
        description="Index the corpus of a BEIR folder (corpus.jsonl, queries.jsonl, "
        "qrels/<split>.tsv), or load one built with `simcse-rag index build` (--index), run "
        "every judged query and report nDCG@10, Recall@100, MRR@10 and per-query latency "
        "(query encoding included).",
    )
    parser.add_argument("--data", required=True, type=Path, help="BEIR folder")
    parser.add_argument("--split", default="test", help="qrels split (default: test)")
    add_model_argument(parser)
    parser.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "bm25"))
    parser.add_argument("--candidates", type=positive_int, default=100)
    add_retriever_arguments(parser)
    parser.add_argument(
        "--index",
        type=Path,
        default=None,
        help="evaluate this saved index instead of indexing the corpus; it must hold every "
        "corpus passage of --data (extra passages are allowed and counted); --model defaults "
        "to the index's model; --dense-index / --tokenizer are fixed by the index, the other "
        "retriever options override its saved values",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="keep corpus embeddings per model here (the same layout as adapt's): a re-run over "
        "the same corpus and model encodes nothing",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    # None marks an option the user did not give: with --index the saved value stands.
    parser.set_defaults(func=run, **dict.fromkeys([*_BUILD_OPTIONS, *_QUERY_OPTIONS]))


def _given(args: argparse.Namespace, names: dict[str, str]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _query_changes(args: argparse.Namespace, weights: dict[str, float]) -> dict[str, Any]:
    """HybridConfig fields set by the query-time options given (``weights``: the base)."""
    changes = _given(args, _QUERY_OPTIONS)
    if "dense_weight" in changes:
        changes["weights"] = {**weights, "dense": changes.pop("dense_weight")}
    return changes


def build_index(args: argparse.Namespace, corpus: list[Passage]) -> tuple[Any, dict[str, Any]]:
    """Index ``corpus`` (vectors from ``--cache-dir`` when there); returns the retriever and
    what to report."""
    from simcse_rag import _io
    from simcse_rag.cli._common import load_encoder
    from simcse_rag.index.hybrid import HybridConfig, HybridRetriever

    config = HybridConfig.for_model(  # fusion options not given: the model's saved setting
        args.model,
        **_given(args, _BUILD_OPTIONS),
        **_query_changes(args, {"dense": 1.0, "bm25": 1.0}),
    )
    retriever = HybridRetriever(load_encoder(args), config)
    # The same folder layout as adapt's --cache-dir (<dir>/<model fingerprint>), so the two
    # commands share vectors; the fingerprint covers the token limit, so they never mix up.
    cache = args.cache_dir / retriever.fingerprint if args.cache_dir is not None else None
    reused = retriever.load_cache(cache) if cache is not None else 0
    _, missing = retriever.cache.lookup([p.text for p in corpus], retriever.passage_backend)
    start = time.perf_counter()
    retriever.add(corpus, show_progress=not args.no_progress)
    build_s = time.perf_counter() - start
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        _io.atomic_write_dir(cache, retriever.cache.write)
        logger.info("%d cached vectors found in %s", reused, cache)
    return retriever, {
        "build_s": build_s,
        "encoded": len(missing),
        "reused": len(corpus) - len(missing),
    }


def load_index(args: argparse.Namespace, corpus: list[Passage]) -> tuple[Any, dict[str, Any]]:
    """Load ``--index``, check it against ``corpus`` and the options; returns the retriever and
    what to report.

    Raises:
        ValueError: An option the saved index contradicts, a corpus passage missing from the
            index or indexed with another text, or any load error (other model, corrupted).
    """
    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.index.hybrid import HybridRetriever

    if args.cache_dir is not None:
        raise ValueError(
            "--cache-dir has no use with --index (a saved index encodes nothing); drop it."
        )
    manifest = HybridRetriever.read_manifest(args.index)
    saved = manifest.get("config", {})
    for name, value in _given(args, _BUILD_OPTIONS).items():
        if value != saved.get(name):
            flag = _BUILD_OPTIONS[name]
            raise ValueError(
                f"{flag} {value} contradicts index {str(args.index)!r}, built with {flag} "
                f"{saved.get(name)}; drop {flag}, or rebuild the index with it."
            )
    encoder = None
    if args.model or args.device:
        name = args.model or manifest.get("model", {}).get("name_or_path") or None
        encoder = SimCSEEncoder.from_pretrained(name, device=args.device)
    start = time.perf_counter()
    retriever = HybridRetriever.load(args.index, encoder)
    extra = check_index_corpus(retriever, corpus, args.index, args.data)
    changes = _query_changes(args, dict(retriever.config.weights))
    if changes:
        retriever = retriever.with_query_settings(**changes)
    load_s = time.perf_counter() - start
    return retriever, {"load_s": load_s, "encoded": 0, "extra_passages": extra}


def check_index_corpus(retriever: Any, corpus: list[Passage], index: Path, data: Path) -> int:
    """Check that ``retriever`` holds every passage of ``corpus`` with the same text.

    Returns:
        How many indexed passages are not in ``corpus`` (distractors).

    Raises:
        ValueError: Corpus ids missing from the index, or indexed with another text.
    """
    missing = [p.id for p in corpus if p.id not in retriever]
    if missing:
        raise ValueError(
            f"index {str(index)!r} lacks {len(missing)} of the {len(corpus)} corpus passages "
            f"of {str(data)!r} (e.g. {missing[:3]}); rebuild it with `simcse-rag index build "
            f"--corpus {data / 'corpus.jsonl'} --out {index}`, or evaluate without --index."
        )
    changed = [p.id for p in corpus if retriever.get(p.id).text != p.text]
    if changed:
        raise ValueError(
            f"index {str(index)!r} holds {len(changed)} corpus passages of {str(data)!r} with "
            f"another text (e.g. {changed[:3]}); rebuild it with `simcse-rag index build "
            f"--corpus {data / 'corpus.jsonl'} --out {index}`, or evaluate without --index."
        )
    return len(retriever) - len(corpus)


def run(args: argparse.Namespace) -> int:
    """Build or load the index, search every query, print the metrics."""
    import numpy as np
    from tqdm.auto import tqdm

    from simcse_rag.datasets import load_beir
    from simcse_rag.evaluation.retrieval import evaluate_run

    data = load_beir(args.data, args.split)
    if not data.corpus:
        raise ValueError(f"{args.data / 'corpus.jsonl'} is empty.")
    if args.index is not None:
        retriever, info = load_index(args, data.corpus)
    else:
        retriever, info = build_index(args, data.corpus)
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
        "index": str(args.index) if args.index is not None else None,
        **info,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    for key, value in result.items():
        if value is not None:
            print(f"{key:>14}: {value:.4f}" if isinstance(value, float) else f"{key:>14}: {value}")
    if result.get("extra_passages"):
        print(
            f"note: the index holds {result['extra_passages']} passages beyond the corpus of "
            f"{args.data}; they stay in as distractors, so the metrics can only be lower than "
            "on the corpus alone",
            file=sys.stderr,
        )
    return 0
