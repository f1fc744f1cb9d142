"""Filtered hybrid search: latency and k-fill against unfiltered search and LangChain's FAISS.

Data: ``--n`` synthetic passages (seeded): 384-d unit vectors, texts of 12 words drawn from a
2,000-word vocabulary (Zipf-like), and metadata ``{"bucket": 0..999, "year": ...}`` with buckets
in random order. Filters on the bucket match 50%, 10%, 1% and 0.1% of the corpus. Queries are
random unit vectors for the dense leg and 3 sampled words for BM25 (no model runs: this measures
the index, not the encoder; query encoding adds the same constant to every row).

For each index kind and filter: p50 / p95 latency of ``HybridRetriever.search`` (hybrid mode,
one query per call), the share of queries that got ``k`` hits among those whose filter matches at
least ``k`` passages, and a leak check (hits outside the filter; must be 0). The first query of
each filter also pays the filter's evaluation over all metadata (cached until the next write):
reported as ``cold ms``. Peer: LangChain's ``FAISS.similarity_search_by_vector(vec, k,
filter=..., fetch_k=<default>)``, which post-filters a fetched window.

``--kinds milvus`` adds Milvus Lite (HNSW), where the filter reaches the collection as an ``id
in [...]`` expression (it stores no metadata): its cost grows with the number of allowed ids.

Async: 64 concurrent ``SimCSERetriever.ainvoke`` vs 64 sequential ``invoke`` (queries/s).

Run::

    python benchmarks/filters.py --n 2000          # smoke (seconds)
    python benchmarks/filters.py --n 100000        # the full run

Goals (issue #18): p50 <= 2x unfiltered at every selectivity; k hits 100% of the time.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "integrations")]

from simcse_rag.index.dense import DenseIndex  # noqa: E402
from simcse_rag.index.filters import parse_filter  # noqa: E402
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever  # noqa: E402
from simcse_rag.schema import Passage  # noqa: E402

DIM = 384
FILTERS = {
    "50%": {"bucket": {"$lt": 500}},
    "10%": {"bucket": {"$lt": 100}},
    "1%": {"bucket": {"$lt": 10}},
    "0.1%": {"bucket": 0},
}


class VectorTable:
    """Stands in for the encoder: returns the synthetic vector stored for each text."""

    name_or_path = "synthetic"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table, self.dim = table, DIM

    def fingerprint(self) -> str:
        return "synthetic-384"

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


class SyntheticRetriever(HybridRetriever):
    """A HybridRetriever whose query vectors come from the table (no model)."""

    def encode_queries(self, queries: Any) -> np.ndarray:
        return self._model.encode(list(queries))


def unit(rng: np.random.Generator, m: int) -> np.ndarray:
    x = rng.standard_normal((m, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_data(n: int, n_queries: int, seed: int) -> tuple[list[Passage], list[str], VectorTable]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(2000)])
    weights = 1.0 / np.arange(1, 2001)
    weights /= weights.sum()
    words = rng.choice(vocab, size=(n, 12), p=weights)
    buckets = rng.permutation(np.arange(n) % 1000)
    texts = [f"{' '.join(row)} #{i}" for i, row in enumerate(words)]  # unique texts
    passages = [
        Passage(f"d{i}", texts[i], {"bucket": int(buckets[i]), "year": 2000 + i % 25})
        for i in range(n)
    ]
    queries = [" ".join(rng.choice(vocab[:500], size=3)) + f" ?{j}" for j in range(n_queries)]
    table = dict(zip(texts + queries, unit(rng, n + n_queries), strict=True))
    return passages, queries, VectorTable(table)


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def bench_ours(retriever: HybridRetriever, queries: list[str], k: int) -> list[dict[str, Any]]:
    rows = []
    passages = retriever.passages
    for name, spec in [("none", None), *FILTERS.items()]:
        flt = None if spec is None else parse_filter(spec)
        allowed = None if flt is None else flt.ids(passages)
        start = time.perf_counter()
        retriever.search(queries[0], k=k, filter=spec)  # cold: evaluates the filter once
        cold = (time.perf_counter() - start) * 1000
        times, full, leaks = [], 0, 0
        for q in queries:
            start = time.perf_counter()
            hits = retriever.search(q, k=k, filter=spec)
            times.append(time.perf_counter() - start)
            full += len(hits) == k
            leaks += 0 if allowed is None else sum(h.id not in allowed for h in hits)
        matching = len(passages) if allowed is None else len(allowed)
        eligible = len(queries) if matching >= k else 0
        rows.append(
            {
                "filter": name,
                "matching": matching,
                "p50_ms": p(times, 50),
                "p95_ms": p(times, 95),
                "cold_ms": cold,
                "k_filled": full / eligible if eligible else None,
                "leaks": leaks,
            }
        )
    return rows


def bench_langchain(passages: list[Passage], table: VectorTable, queries: list[str], k: int):
    try:
        from langchain_community.vectorstores import FAISS
        from langchain_core.embeddings import Embeddings
    except ImportError:
        return None

    class TableEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return table.encode(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return table.encode([text])[0].tolist()

    store = FAISS.from_embeddings(
        [(p.text, table.table[p.text].tolist()) for p in passages],
        TableEmbeddings(),
        metadatas=[p.metadata for p in passages],
        ids=[p.id for p in passages],
    )
    fetch_k = inspect.signature(FAISS.similarity_search_by_vector).parameters["fetch_k"].default
    rows = []
    for name, spec in [("none", None), *FILTERS.items()]:
        times, full = [], 0
        for q in queries:
            vec = table.table[q].tolist()
            start = time.perf_counter()
            docs = store.similarity_search_by_vector(vec, k=k, filter=spec, fetch_k=fetch_k)
            times.append(time.perf_counter() - start)
            full += len(docs) == k
        rows.append({"filter": name, "p50_ms": p(times, 50), "k_filled": full / len(queries)})
    return {"fetch_k": fetch_k, "rows": rows}


def bench_async(retriever: HybridRetriever, queries: list[str], k: int) -> dict[str, float]:
    from langchain_simcse import SimCSERetriever

    lc = SimCSERetriever(index=retriever, k=k)
    batch = (queries * (64 // len(queries) + 1))[:64]
    start = time.perf_counter()
    for q in batch:
        lc.invoke(q)
    sequential = 64 / (time.perf_counter() - start)

    async def concurrent() -> None:
        await asyncio.gather(*(lc.ainvoke(q) for q in batch))

    start = time.perf_counter()
    asyncio.run(concurrent())
    parallel = 64 / (time.perf_counter() - start)
    return {
        "sequential_qps": sequential,
        "concurrent_qps": parallel,
        "ratio": parallel / sequential,
    }


def dense_index(kind: str, workdir: Path) -> Any:
    """FAISS ``flat`` / ``ivf`` / ``hnsw``, or ``milvus`` (Milvus Lite, HNSW: the filter goes in
    as an ``id in [...]`` expression)."""
    if kind != "milvus":
        return DenseIndex(DIM, kind)
    from simcse_rag.index.milvus import MilvusDenseIndex

    return MilvusDenseIndex(DIM, str(workdir / "vectors.db"), index_type="HNSW")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="passages (default 100000)")
    parser.add_argument("--queries", type=int, default=200, help="queries per filter")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument(
        "--kinds", default="flat,hnsw", help="comma-separated: flat, ivf, hnsw, milvus"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    passages, queries, table = make_data(args.n, args.queries, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="filters-bench-"))
    try:
        return run(args, passages, queries, table, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(
    args: argparse.Namespace,
    passages: list[Passage],
    queries: list[str],
    table: VectorTable,
    workdir: Path,
) -> int:
    """Run every measurement, print the tables, write ``--json``."""
    report: dict[str, Any] = {"n": args.n, "k": args.k, "queries": args.queries, "ours": {}}
    config = HybridConfig(query_backend="torch")
    for kind in args.kinds.split(","):
        retriever = SyntheticRetriever(table, config, dense_index=dense_index(kind, workdir))
        retriever.add(passages)
        rows = bench_ours(retriever, queries, args.k)
        report["ours"][kind] = rows
        base = rows[0]["p50_ms"]
        print(f"\nours, {kind}, n={args.n}, k={args.k}")
        print(
            f"{'filter':>7} {'match':>7} {'p50 ms':>8} {'x unf':>6} {'p95 ms':>8} "
            f"{'cold ms':>8} {'k filled':>8} {'leaks':>5}"
        )
        for r in rows:
            filled = "-" if r["k_filled"] is None else f"{r['k_filled']:.0%}"
            print(
                f"{r['filter']:>7} {r['matching']:>7} {r['p50_ms']:>8.2f} "
                f"{r['p50_ms'] / base:>6.2f} {r['p95_ms']:>8.2f} {r['cold_ms']:>8.1f} "
                f"{filled:>8} {r['leaks']:>5}"
            )
    peer = bench_langchain(passages, table, queries, args.k)
    report["langchain_faiss"] = peer
    if peer is not None:
        print(f"\nLangChain FAISS (dense only, post-filter, fetch_k={peer['fetch_k']})")
        for r in peer["rows"]:
            print(f"{r['filter']:>7} p50 {r['p50_ms']:>8.2f} ms  k filled {r['k_filled']:.0%}")
    report["async"] = bench_async(retriever, queries, args.k)
    a = report["async"]
    print(
        f"\nasync: 64 sequential invoke {a['sequential_qps']:.1f} q/s, 64 concurrent ainvoke "
        f"{a['concurrent_qps']:.1f} q/s ({a['ratio']:.2f}x)"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
