"""BM25 inside Milvus (Lite) vs our BM25Index: quality and speed on the shared retrieval sets.

For each BEIR-layout set under ``--data`` (English medical, English finance, Chinese medical)
both indexes are built over the same corpus and searched with the same queries; the table gives
nDCG@10 / Recall@100, build time and single-query p50 latency, and the ratio ours / Milvus.
Milvus analyzers: ``en`` (standard tokenizer + lowercase) for English, ``zh`` (jieba) for
Chinese; ours uses its ``auto`` tokenizer (English stemming + stop words, jieba for CJK).

Run::

    python benchmarks/milvus_bm25.py                 # all three sets (a few minutes)
    python benchmarks/milvus_bm25.py --sets tatqa_fin_dev --queries 200
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SETS = {
    "liveqa_medquad": ("test", "en"),
    "tatqa_fin_dev": ("dev", "en"),
    "zh_med_qa": ("dev", "zh"),
}


def _lite_wait_for_indexes(index) -> None:
    """Flush, then wait for Milvus Lite's background index build (private API; in-process server).

    Lite builds segment indexes on a background thread and reports them finished at once, so
    without this the first searches would scan unindexed rows.
    """
    from milvus_lite.server_manager import server_manager_instance

    index.flush()
    _, db, _ = server_manager_instance._servers[os.path.abspath(index.uri)]
    db.get_collection(index.collection)._wait_for_bg()


def run_index(index, queries: dict[str, str], depth: int, n_latency: int) -> tuple[dict, float]:
    qids = list(queries)
    ids, _ = index.search([queries[q] for q in qids], depth)
    run = {q: list(row) for q, row in zip(qids, ids.tolist(), strict=True)}
    lat = []
    for q in qids[:n_latency]:
        t0 = time.perf_counter()
        index.search([queries[q]], 10)
        lat.append(time.perf_counter() - t0)
    return run, 1000 * float(np.median(lat))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--queries", type=int, default=0, help="cap on queries per set (0 = all)")
    parser.add_argument("--latency-queries", type=int, default=100)
    args = parser.parse_args()

    from simcse_rag.datasets import load_beir
    from simcse_rag.evaluation.retrieval import evaluate_run
    from simcse_rag.index.bm25 import BM25Index
    from simcse_rag.index.milvus_bm25 import MilvusBM25Index

    lines = [
        "| set | docs | queries | index | nDCG@10 | Recall@100 | build s | p50 ms |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    ratios = []
    workdir = Path(tempfile.mkdtemp(prefix="milvus-bm25-"))
    for name in args.sets.split(","):
        split, lang = SETS[name]
        data = load_beir(args.data / name, split)
        ids = [p.id for p in data.corpus]
        texts = [p.text for p in data.corpus]
        queries = {q: t for q, t in data.queries.items() if q in data.qrels}
        if args.queries:
            queries = dict(list(queries.items())[: args.queries])
        results = {}
        for label in ("ours (BM25Index)", "Milvus Lite BM25"):
            t0 = time.perf_counter()
            if label.startswith("ours"):
                index = BM25Index("auto")
                index.add(ids, texts)
                index.search(["warm up"], 1)  # builds the score matrix
            else:
                index = MilvusBM25Index(str(workdir / f"{name}.db"), analyzer=lang)
                index.add(ids, texts)
                _lite_wait_for_indexes(index)
            build = time.perf_counter() - t0
            run, p50 = run_index(index, queries, 100, args.latency_queries)
            metrics = evaluate_run(run, data.qrels, ks=(10, 100), metrics=("ndcg", "recall"))
            results[label] = metrics
            lines.append(
                f"| {name} | {len(ids):,} | {len(queries):,} | {label} | "
                f"{metrics['ndcg@10']:.4f} | {metrics['recall@100']:.4f} | "
                f"{build:.1f} | {p50:.2f} |"
            )
            print(lines[-1], flush=True)
        ours, theirs = results["ours (BM25Index)"], results["Milvus Lite BM25"]
        ratios.append((name, ours["ndcg@10"] / max(theirs["ndcg@10"], 1e-9)))
    print()
    print("\n".join(lines))
    print()
    for name, ratio in ratios:
        print(f"- {name}: nDCG@10 ours / Milvus Lite = {ratio:.3f}")


if __name__ == "__main__":
    main()
