"""Retrieval benchmark: simcse-rag (dense, bm25, hybrid) vs every LangChain / LlamaIndex config.

Every system uses the same all-MiniLM-L6-v2 model and the same documents, in one run:

* ours: ``HybridRetriever`` in ``dense``, ``bm25`` and ``hybrid`` modes, library defaults;
* LangChain: ``BM25Retriever``, ``FAISS.as_retriever()`` and ``EnsembleRetriever`` of the two;
* LlamaIndex: ``BM25Retriever``, the vector retriever and ``QueryFusionRetriever`` of the two in
  each of its modes ``reciprocal_rerank``, ``relative_score`` and ``dist_based_score``
  (``benchmarks/peers.py``).

Corpus embeddings are computed once per dataset with the shared model (timed, reported as
``encode_s``) and handed to every system (ours through its embedding cache, the peers through
precomputed vectors), so ``build_s`` is each system's own indexing time on top of that. Queries are
encoded live for every system (sentence-transformers ``encode`` for the peers, our encoder for
us), and latency is the wall time of one query, query encoding included. All query timings run
with the same thread settings (``--threads``, default 1 for torch and FAISS) so no system gains
from the other's parallelism.

A last section measures our BM25 index alone on ``--synthetic`` passages (default 100k) built
from the real corpora's vocabulary.

Usage::

    python benchmarks/retrieval.py                      # all three sets, Markdown table
    python benchmarks/retrieval.py --datasets tatqa_fin_dev --max-queries 200 --json out.json
    python benchmarks/retrieval.py --cache-dir /root/simcse-cache/retrieval --no-latency \
        --query-backends auto --synthetic 0                # quality only (no timings)
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# The shared data folder of this machine, else one beside the checkout (a worktree elsewhere).
DEFAULT_DATA = next(
    (p for p in (Path("/work/shared/data"), REPO.parent / "shared" / "data") if p.is_dir()),
    REPO.parent / "shared" / "data",
)
DATASETS = {"liveqa_medquad": "test", "tatqa_fin_dev": "dev", "zh_med_qa": "dev"}
K_EVAL = 100

log = logging.getLogger("benchmarks.retrieval")


# ---------------------------------------------------------------------------------- helpers
def timed_queries(
    search: Callable[[str], list[str]], queries: dict[str, str], warmup: int = 3
) -> tuple[dict[str, list[str]], list[float]]:
    """Run every query once (after a short warm-up); return the run and per-query ms."""
    items = list(queries.items())
    for _, text in items[:warmup]:
        search(text)
    run: dict[str, list[str]] = {}
    lat: list[float] = []
    for qid, text in items:
        t0 = time.perf_counter()
        run[qid] = search(text)
        lat.append((time.perf_counter() - t0) * 1000)
    return run, lat


def summarize(
    name: str, run: dict[str, list[str]], lat: list[float], qrels: Any, build_s: float
) -> dict[str, Any]:
    from simcse_rag.evaluation.retrieval import evaluate_run

    m = evaluate_run(run, qrels, ks=(10, 100))
    return {
        "system": name,
        "ndcg@10": m["ndcg@10"],
        "recall@100": m["recall@100"],
        "mrr@10": m["mrr@10"],
        "p50_ms": float(np.percentile(lat, 50)) if lat else None,
        "p95_ms": float(np.percentile(lat, 95)) if lat else None,
        "build_s": build_s,
        "queries": m["queries"],
    }


def corpus_embeddings(
    encoder: Any, texts: list[str], cache_dir: Path | None, name: str
) -> tuple[Any, float]:
    """Embed the corpus once with our encoder, reusing an on-disk EmbeddingCache if present."""
    from simcse_rag.index.cache import EmbeddingCache

    cache = EmbeddingCache(encoder.fingerprint(), encoder.dim)
    folder = cache_dir / name if cache_dir else None
    if folder and (folder / "embeddings.json").is_file():
        cache.merge(EmbeddingCache.read(folder))
    _, missing = cache.lookup(texts)
    todo = list(dict.fromkeys(texts[i] for i in missing))
    t0 = time.perf_counter()
    if todo:
        log.warning(
            "%s: encoding %d passages (cached: %d)", name, len(todo), len(texts) - len(missing)
        )
        cache.put(todo, encoder.encode(todo, batch_size=64, show_progress=True))
    encode_s = time.perf_counter() - t0
    if folder and todo:
        folder.mkdir(parents=True, exist_ok=True)
        cache.write(folder)
    return cache, encode_s


def subsample_corpus(data: Any, limit: int) -> Any:
    """Keep every passage judged for an evaluated query plus seeded random others, ``limit`` in all.

    Only for machines too slow to encode the full corpus; the table says when it was used.
    """
    judged = {d for q in data.queries for d in data.qrels.get(q, {})}
    keep = [p for p in data.corpus if p.id in judged]
    others = [p for p in data.corpus if p.id not in judged]
    random.Random(0).shuffle(others)
    keep += others[: max(0, limit - len(keep))]
    log.warning(
        "corpus limited to %d of %d passages (%d judged)", len(keep), len(data.corpus), len(judged)
    )
    return type(data)(keep, data.queries, data.qrels)


# ---------------------------------------------------------------------------------- systems
def run_ours(data: Any, encoder: Any, cache: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Our three modes, once per query backend in ``--query-backends``."""
    rows = []
    for backend in args.query_backends:
        rows += _run_ours_backend(data, encoder, cache, args, backend)
    return rows


def _run_ours_backend(
    data: Any, encoder: Any, cache: Any, args: argparse.Namespace, backend: str
) -> list[dict[str, Any]]:
    from simcse_rag.index.hybrid import HybridConfig, HybridRetriever

    defaults = HybridConfig()
    config = HybridConfig(
        dense_index=args.dense_index,
        tokenizer=args.tokenizer,
        fusion=args.fusion or defaults.fusion,
        rrf_k=defaults.rrf_k if args.rrf_k is None else args.rrf_k,
        weights={
            "dense": defaults.weights["dense"] if args.dense_weight is None else args.dense_weight,
            "bm25": defaults.weights["bm25"],
        },
        query_backend=backend,
        passage_backend=args.passage_backend or defaults.passage_backend,
    )
    t0 = time.perf_counter()
    retriever = HybridRetriever(encoder, config)
    retriever.cache.merge(cache)
    retriever.add(data.corpus)
    retriever.bm25_index.build()  # count the BM25 build in build time, not the first query
    retriever.encode_queries(["warm up the query encoder"])  # ONNX export + quantization
    build_s = time.perf_counter() - t0
    rows = []
    modes = (
        ("dense", "bm25", "hybrid") if backend == args.query_backends[0] else ("dense", "hybrid")
    )
    for mode in modes:

        def search(q: str, mode: str = mode) -> list[str]:
            return [
                h.id for h in retriever.search(q, k=K_EVAL, mode=mode, candidates=args.candidates)
            ]

        run, lat = timed_queries(search, data.queries, warmup=0 if args.no_latency else 3)
        if args.no_latency:
            lat = []
        label = f"simcse-rag {mode}" if mode == "bm25" else f"simcse-rag {mode} [{backend}]"
        rows.append(summarize(label, run, lat, data.qrels, build_s))
    return rows


def st_model() -> Any:
    from sentence_transformers import SentenceTransformer

    from simcse_rag.encoder import default_model_path

    return SentenceTransformer(str(default_model_path()), device="cpu")


def run_peers(data: Any, st: Any, cache: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every peer configuration of ``--systems`` (see ``benchmarks/peers.py``)."""
    from peers import QueryVectors, run_langchain, run_llamaindex

    vectors = QueryVectors(st, list(data.queries.values()) if args.no_latency else None)

    def measure(name: str, search: Callable[[str], list[str]], build_s: float) -> dict[str, Any]:
        run, lat = timed_queries(search, data.queries, warmup=0 if args.no_latency else 3)
        return summarize(name, run, [] if args.no_latency else lat, data.qrels, build_s)

    rows: list[dict[str, Any]] = []
    if "langchain" in args.systems:
        rows += run_langchain(data, vectors, cache, K_EVAL, measure)
    if "llamaindex" in args.systems:
        rows += run_llamaindex(data, vectors, cache, K_EVAL, measure, args.no_latency)
    return rows


# ---------------------------------------------------------------------------------- synthetic
def synthetic_bm25(n: int, vocabulary_source: list[str], n_queries: int = 300) -> dict[str, Any]:
    """Our BM25 alone on ``n`` synthetic passages drawn (Zipf-like) from a real vocabulary."""
    from simcse_rag.index.bm25 import BM25Index

    rng = random.Random(0)
    words = [w for text in vocabulary_source for w in text.split() if w.isalpha()]
    vocab = list(dict.fromkeys(words))
    rng.shuffle(vocab)
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    passages = [" ".join(rng.choices(vocab, weights, k=rng.randint(30, 120))) for _ in range(n)]
    queries = [
        " ".join(rng.sample(p.split(), min(8, len(p.split()))))
        for p in rng.sample(passages, n_queries)
    ]
    t0 = time.perf_counter()
    index = BM25Index(tokenizer="en")
    index.add([f"s{i}" for i in range(n)], passages)
    index.build()
    build_s = time.perf_counter() - t0
    for q in queries[:5]:
        index.search([q], 10)
    lat = []
    for q in queries:
        t = time.perf_counter()
        index.search([q], 10)
        lat.append((time.perf_counter() - t) * 1000)
    return {
        "passages": n,
        "vocab": len(vocab),
        "build_s": build_s,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
    }


# ---------------------------------------------------------------------------------- report
def markdown(results: dict[str, Any]) -> str:
    lines = []
    for name, block in results["datasets"].items():
        lines.append(
            f"\n### {name} ({block['corpus']} passages, {block['queries']} queries; shared corpus "
            f"encoding {block['encode_s']:.1f}s)\n"
        )
        lines.append("| system | nDCG@10 | Recall@100 | MRR@10 | p50 ms | p95 ms | build s |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in block["rows"]:
            p50, p95 = (f"{r[c]:.1f}" if r[c] is not None else "-" for c in ("p50_ms", "p95_ms"))
            lines.append(
                f"| {r['system']} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | "
                f"{r['mrr@10']:.4f} | {p50} | {p95} | {r['build_s']:.1f} |"
            )
        for key, value in block["ratios"].items():
            lines.append(f"\n- {key}: {value}")
    syn = results.get("synthetic")
    if syn:
        lines.append(
            f"\n### BM25 alone, {syn['passages']:,} synthetic passages\n\n"
            f"p50 {syn['p50_ms']:.2f} ms, p95 {syn['p95_ms']:.2f} ms, build {syn['build_s']:.1f} s "
            f"(goal p50 <= 5 ms: {'met' if syn['p50_ms'] <= 5 else 'MISSED'})"
        )
    return "\n".join(lines)


#: Peer rows that fuse two legs (the latency goal compares our hybrid with the faster of these).
PEER_HYBRIDS = ("LangChain EnsembleRetriever", "LlamaIndex QueryFusionRetriever")


def ratios(rows: list[dict[str, Any]], backends: list[str]) -> dict[str, str]:
    """Goal checks for each of our query backends: >= every peer configuration + 1.0 nDCG@10
    point, >= each of our own legs, p50 <= 1/3 of the faster peer hybrid."""
    by = {r["system"]: r for r in rows}
    peers = [r for r in rows if not r["system"].startswith("simcse-rag")]
    out: dict[str, str] = {}
    if not peers:
        return out
    best_peer = max(peers, key=lambda r: r["ndcg@10"])
    timed = [r for r in peers if r["system"].startswith(PEER_HYBRIDS) and r["p50_ms"] is not None]
    for backend in backends:
        ours = by[f"simcse-rag hybrid [{backend}]"]
        own = max(by[f"simcse-rag dense [{backend}]"]["ndcg@10"], by["simcse-rag bm25"]["ndcg@10"])
        margin = ours["ndcg@10"] - best_peer["ndcg@10"]
        out[f"[{backend}] hybrid nDCG@10 - best peer configuration"] = (
            f"{margin:+.4f} vs {best_peer['system']} "
            f"(goal >= +0.0100: {'met' if margin >= 0.01 else 'MISSED'})"
        )
        out[f"[{backend}] hybrid nDCG@10 - max(our dense, our bm25)"] = (
            f"{ours['ndcg@10'] - own:+.4f} ({'met' if ours['ndcg@10'] >= own else 'MISSED'})"
        )
        if timed and ours["p50_ms"] is not None:
            fastest = min(timed, key=lambda r: r["p50_ms"])
            ratio = ours["p50_ms"] / fastest["p50_ms"]
            out[f"[{backend}] hybrid p50 / faster peer hybrid p50"] = (
                f"{ratio:.3f} vs {fastest['system']} "
                f"(goal <= 0.333: {'met' if ratio <= 1 / 3 else 'MISSED'})"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--systems", nargs="+", default=["ours", "langchain", "llamaindex"])
    parser.add_argument("--max-queries", type=int, default=None, help="limit queries (smoke runs)")
    parser.add_argument(
        "--corpus-limit",
        type=int,
        default=None,
        help="keep every judged passage plus seeded random others up to this many (slow CPUs)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch/FAISS threads while querying")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="reuse corpus embeddings across runs"
    )
    parser.add_argument(
        "--synthetic", type=int, default=100_000, help="BM25 synthetic size (0: skip)"
    )
    parser.add_argument("--dense-index", default="auto")
    parser.add_argument("--tokenizer", default="auto")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument(
        "--query-backends",
        nargs="+",
        default=["torch", "onnx", "onnx-int8"],
        choices=["auto", "torch", "onnx", "onnx-int8"],
        help="our query encoders to compare (the build time includes the ONNX export)",
    )
    parser.add_argument(
        "--passage-backend",
        default=None,
        choices=["auto", "torch", "onnx", "onnx-int8"],
        help="our passage vectors (default: HybridConfig's); torch reuses a --cache-dir written "
        "with PyTorch vectors instead of encoding the corpus again (search latency is the same)",
    )
    # The library's defaults: settings tuned on the sets they are scored on do not transfer
    # (docs/benchmarks.md, "Leave one dataset out"); benchmarks/defaults.py chooses them.
    parser.add_argument("--fusion", default=None, help="default: HybridConfig's")
    parser.add_argument("--rrf-k", type=float, default=None, help="default: HybridConfig's")
    parser.add_argument("--dense-weight", type=float, default=None, help="default: HybridConfig's")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument(
        "--no-latency",
        action="store_true",
        help="quality only: queries batch-encoded, peer fusions reuse their legs, no timings",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")

    import faiss
    import torch

    from simcse_rag.datasets import load_beir
    from simcse_rag.encoder import SimCSEEncoder

    encoder = SimCSEEncoder.from_pretrained(device="cpu")
    st = st_model() if {"langchain", "llamaindex"} & set(args.systems) else None
    results: dict[str, Any] = {
        "model": encoder.name_or_path,
        "threads": args.threads,
        "datasets": {},
    }
    vocab_source: list[str] = []
    for name in args.datasets:
        data = load_beir(args.data / name, DATASETS[name])
        if args.max_queries:
            keep = list(data.queries)[: args.max_queries]
            data = type(data)(
                data.corpus,
                {q: data.queries[q] for q in keep},
                {q: data.qrels[q] for q in keep if q in data.qrels},
            )
        if args.corpus_limit and len(data.corpus) > args.corpus_limit:
            data = subsample_corpus(data, args.corpus_limit)
        texts = [p.text for p in data.corpus]
        vocab_source.extend(texts[:5000])
        cache, encode_s = corpus_embeddings(encoder, texts, args.cache_dir, name)
        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
        rows: list[dict[str, Any]] = []
        if "ours" in args.systems:
            rows += run_ours(data, encoder, cache, args)
            log.warning("%s ours done", name)
        if st is not None:
            rows += run_peers(data, st, cache, args)
            log.warning("%s peers done", name)
        block = {
            "corpus": len(data.corpus),
            "queries": rows[0]["queries"] if rows else 0,
            "encode_s": encode_s,
            "rows": rows,
            "ratios": ratios(rows, args.query_backends) if "ours" in args.systems else {},
        }
        results["datasets"][name] = block
    if args.synthetic:
        results["synthetic"] = synthetic_bm25(args.synthetic, vocab_source)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
