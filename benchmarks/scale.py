"""Scale: 1M x 384-d vectors in FAISS IVF / HNSW (our DenseIndex) and Milvus Lite, one run.

Data: ``--n`` synthetic unit vectors from a seeded Gaussian mixture (``--clusters`` centres on
the sphere; each point is its centre plus a 64-d low-rank Gaussian plus small isotropic noise,
then normalised), written in chunks to a cached ``.npy`` under ``--workdir`` and memory-mapped.
Sentence embeddings are clustered by topic and have low intrinsic dimension; uniform random
vectors would make every approximate index look bad (and no real corpus looks like that).
Queries are fresh draws from the same mixture. Ground truth is exact inner-product top-10 (FAISS
flat, chunked).

Every index is built in its own subprocess, so its memory is measured cleanly: ``RSS`` is the
growth of that process's resident memory while building (the vectors it was given are already
resident before the clock starts). For each search setting the table gives the single-query p50 /
p95 latency (one query per call, ``--latency-queries`` calls after a warm-up) and recall@10 over
``--queries`` queries.

Run::

    python benchmarks/scale.py --n 20000                      # a quick look (~1 min)
    nohup python benchmarks/scale.py --n 1000000 > scale.log &   # the full run (see the note)

Goals (issue #8): p50 <= 10 ms with recall@10 >= 0.95 on FAISS; Milvus Lite side by side.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

K = 10
METHODS = ("faiss-flat", "faiss-ivf", "faiss-hnsw", "milvus-hnsw", "milvus-ivf")


# ---------------------------------------------------------------------------------- data
def _mixture(seed: int, dim: int, clusters: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = rng.standard_normal((rank, dim)).astype(np.float32) / np.sqrt(dim)
    return centres, basis


def _draw(
    rng: np.random.Generator, m: int, centres: np.ndarray, basis: np.ndarray, spread: float = 1.0
) -> np.ndarray:
    which = rng.integers(0, centres.shape[0], size=m)
    low_rank = rng.standard_normal((m, basis.shape[0])).astype(np.float32) @ basis
    iso = 0.01 * rng.standard_normal((m, centres.shape[1])).astype(np.float32)
    # low_rank has norm ~sqrt(rank); scaled so the spread around a centre has norm ``spread``
    # (1.0: cosine to its centre ~0.7; 2.0: ~0.45, clusters overlap), the isotropic part ~0.2.
    x = centres[which] + (spread / np.sqrt(basis.shape[0])) * low_rank + iso
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_data(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """Write (or reuse) base vectors, queries and exact top-k ids; return their paths."""
    tag = f"v2_n{args.n}_d{args.dim}_c{args.clusters}_s{args.seed}_q{args.queries}"
    if args.spread != 1.0:
        tag += f"_sp{args.spread:g}"
    base_path = args.workdir / f"base_{tag}.npy"
    query_path = args.workdir / f"queries_{tag}.npy"
    truth_path = args.workdir / f"truth_{tag}.npy"
    if base_path.exists() and query_path.exists() and truth_path.exists():
        return base_path, query_path, truth_path
    centres, basis = _mixture(args.seed, args.dim, args.clusters, 64)
    rng = np.random.default_rng(args.seed + 1)
    base = np.lib.format.open_memmap(
        base_path, mode="w+", dtype=np.float32, shape=(args.n, args.dim)
    )
    for start in range(0, args.n, args.chunk):
        base[start : start + args.chunk] = _draw(
            rng, min(args.chunk, args.n - start), centres, basis
        )
    base.flush()
    queries = _draw(np.random.default_rng(args.seed + 2), args.queries, centres, basis, args.spread)
    np.save(query_path, queries)
    np.save(truth_path, exact_topk(base, queries, K, args.chunk))
    del base
    return base_path, query_path, truth_path


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int, chunk: int) -> np.ndarray:
    """Exact inner-product top-k row numbers, scanning ``base`` in chunks (FAISS flat)."""
    import faiss

    best_s = np.full((queries.shape[0], 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((queries.shape[0], 0), dtype=np.int64)
    for start in range(0, base.shape[0], chunk):
        part = np.ascontiguousarray(base[start : start + chunk])
        flat = faiss.IndexFlatIP(part.shape[1])
        flat.add(part)
        s, i = flat.search(queries, min(k, part.shape[0]))
        best_s = np.concatenate([best_s, s], axis=1)
        best_i = np.concatenate([best_i, i + start], axis=1)
        order = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(best_s, order, axis=1)
        best_i = np.take_along_axis(best_i, order, axis=1)
    return best_i


# ---------------------------------------------------------------------------------- measuring
def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist(), strict=True)]
    return float(np.mean(hits)) / truth.shape[1]


def measure(index: Any, queries: np.ndarray, truth: np.ndarray, n_latency: int) -> dict[str, float]:
    """Recall@10 over all queries (batched) and single-query latency over ``n_latency`` calls."""
    ids, _ = index.search(queries, K)
    found = np.vectorize(lambda s: int(s[1:]), otypes=[np.int64])(ids)
    for q in queries[:5]:  # warm-up
        index.search(q[None, :], K)
    lat = []
    for q in queries[:n_latency]:
        t0 = time.perf_counter()
        index.search(q[None, :], K)
        lat.append(time.perf_counter() - t0)
    lat_ms = 1000 * np.asarray(lat)
    return {
        "recall@10": recall_at_k(found, truth),
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p95_ms": float(np.percentile(lat_ms, 95)),
    }


def _ids(n: int) -> list[str]:
    return [f"v{i}" for i in range(n)]


def _set_search_param(index: Any, name: str, value: int) -> None:
    """Change a search-time setting without rebuilding.

    DenseIndex reads ``ef_search`` at every search; IVF's ``nprobe`` is fixed on the FAISS object
    at build time, so it is set there (a private attribute; DenseIndex has no public setter yet).
    """
    if not hasattr(index, "_index"):  # Milvus: search_params travel with every request
        index.search_params = {name: value}
    elif name == "ef_search":
        index.ef_search = value
    elif name == "nprobe":
        index.nprobe = value
        index._index.nprobe = min(value, index._index.nlist)
    else:
        raise ValueError(f"unknown search setting {name!r}")


def _lite_wait_for_indexes(index: Any) -> None:
    """Flush, then wait until Milvus Lite has built every segment's index.

    Milvus Lite builds segment indexes on a background thread and reports them as finished at
    once (its DescribeIndex always says ``Finished``), so the benchmark drains that thread
    through Lite's engine (private API; the server runs inside this process).
    """
    from milvus_lite.server_manager import server_manager_instance

    index.flush()
    _, db, _ = server_manager_instance._servers[os.path.abspath(index.uri)]
    db.get_collection(index.collection)._wait_for_bg()


def build_and_measure(
    method: str, paths: tuple[str, str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """Child process: build one index, then sweep its search setting."""
    base = np.load(paths[0], mmap_mode="r")
    queries, truth = np.load(paths[1]), np.load(paths[2])
    vectors = np.ascontiguousarray(base)  # resident before the clock starts
    ids = _ids(vectors.shape[0])
    from simcse_rag.index.dense import DenseIndex
    from simcse_rag.index.milvus import MilvusDenseIndex

    kind = method.split("-")[1]
    rss0 = rss_mb()
    t0 = time.perf_counter()
    if method.startswith("faiss"):
        index = DenseIndex(
            args.dim,
            kind,
            nlist=args.nlist or max(1, int(np.sqrt(vectors.shape[0]))),
            hnsw_m=args.hnsw_m,
            ef_construction=args.ef_construction,
        )
        step = vectors.shape[0] if kind == "ivf" else args.add_batch  # IVF trains on its first add
        for start in range(0, vectors.shape[0], step):
            index.add(ids[start : start + step], vectors[start : start + step])
    else:
        db = Path(tempfile.mkdtemp(dir=args.workdir)) / "milvus.db"
        if kind == "hnsw":
            params = {"M": args.hnsw_m, "efConstruction": args.ef_construction}
            index = MilvusDenseIndex(args.dim, str(db), index_type="HNSW", index_params=params)
        else:
            nlist = args.nlist or max(1, int(np.sqrt(min(vectors.shape[0], 100_000))))
            params = {"nlist": nlist}
            index = MilvusDenseIndex(args.dim, str(db), index_type="IVF_FLAT", index_params=params)
        for start in range(0, vectors.shape[0], args.add_batch):
            index.add(ids[start : start + args.add_batch], vectors[start : start + args.add_batch])
        _lite_wait_for_indexes(index)
    build_s = time.perf_counter() - t0
    memory = rss_mb() - rss0
    del vectors
    sweep: dict[str, list[int]] = {
        "faiss-flat": [0],
        "faiss-ivf": args.nprobe,
        "faiss-hnsw": args.ef_search,
        "milvus-hnsw": args.ef_search,
        "milvus-ivf": args.nprobe,
    }
    param = {
        "faiss-ivf": "nprobe",
        "faiss-hnsw": "ef_search",
        "milvus-hnsw": "ef",
        "milvus-ivf": "nprobe",
    }
    rows = []
    for value in sweep[method]:
        if method != "faiss-flat":
            _set_search_param(index, param[method], value)
        row = {
            "method": method,
            "setting": f"{param.get(method, 'exact')}={value}" if value else "exact",
        }
        row.update(measure(index, queries, truth, args.latency_queries))
        rows.append(row)
    if method.startswith("milvus"):
        index.close()
        shutil.rmtree(db.parent, ignore_errors=True)
    return {"method": method, "build_s": build_s, "rss_mb": memory, "rows": rows}


def _child(method: str, paths: tuple[str, str, str], args: argparse.Namespace, out: Any) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    out.put(build_and_measure(method, paths, args))


# ---------------------------------------------------------------------------------- report
def header(args: argparse.Namespace) -> list[str]:
    return [
        f"n={args.n:,} dim={args.dim} clusters={args.clusters} spread={args.spread:g} "
        f"queries={args.queries} "
        f"(latency over {args.latency_queries} single-query calls), {os.cpu_count()} CPUs",
        "",
        "| index | setting | build s | RSS MB | p50 ms | p95 ms | recall@10 | p50<=10 & R>=0.95 |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]


def rows(res: dict[str, Any]) -> list[str]:
    out = []
    for row in res["rows"]:
        ok = row["p50_ms"] <= 10 and row["recall@10"] >= 0.95
        out.append(
            f"| {res['method']} | {row['setting']} | {res['build_s']:.1f} | {res['rss_mb']:.0f} | "
            f"{row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['recall@10']:.3f} | "
            f"{'yes' if ok else 'no'} |"
        )
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="base vectors (default 1M)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument(
        "--spread", type=float, default=1.0, help="cluster spread (norm; larger = harder)"
    )
    parser.add_argument("--queries", type=int, default=1000, help="queries for recall")
    parser.add_argument("--latency-queries", type=int, default=300, help="single-query calls timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--chunk", type=int, default=100_000, help="rows generated / scanned at once"
    )
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma list of {METHODS}")
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default sqrt(n))")
    parser.add_argument(
        "--nprobe", type=lambda s: [int(x) for x in s.split(",")], default=[16, 32, 64, 128]
    )
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=100)
    parser.add_argument(
        "--ef-search", type=lambda s: [int(x) for x in s.split(",")], default=[32, 64, 128, 256]
    )
    parser.add_argument("--add-batch", type=int, default=100_000, help="vectors per add() call")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="FAISS build threads"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "simcse-rag-bench-scale",
        help="data cache and Milvus Lite files",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON here")
    args = parser.parse_args(argv)
    unknown = set(args.methods.split(",")) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    return args


def _wait(proc: Any, out: Any, method: str) -> dict[str, Any]:
    while True:
        try:
            res = out.get(timeout=5)
        except queue.Empty:
            if not proc.is_alive():
                raise RuntimeError(
                    f"{method}: benchmark process died (exit code {proc.exitcode})"
                ) from None
            continue
        proc.join()
        return res


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    paths = tuple(str(p) for p in make_data(args))
    print(f"data + exact ground truth: {time.perf_counter() - t0:.1f} s", flush=True)
    ctx = mp.get_context("spawn")
    results = []
    print("\n".join(header(args)), flush=True)
    for method in args.methods.split(","):
        out = ctx.Queue()
        proc = ctx.Process(target=_child, args=(method, paths, args, out))
        proc.start()
        res = _wait(proc, out, method)
        results.append(res)
        print("\n".join(rows(res)), flush=True)
    print("\nAll results:\n")
    print("\n".join(header(args) + [r for res in results for r in rows(res)]))
    if args.json:
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
