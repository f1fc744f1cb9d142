"""Async throughput: 64 concurrent async calls vs 64 sequential sync calls, both adapters.

Index: a real retrieval set (``--dataset``, default LiveQA / MedQuAD, 17k passages) with the
bundled all-MiniLM-L6-v2; passage vectors come from an EmbeddingCache folder
(``--cache-dir``, as ``benchmarks/retrieval.py --cache-dir`` writes it), so nothing is
re-encoded when it holds them. The index is saved (with its int8 ONNX query model) and loaded
back, as an application would, and searched with the library defaults (hybrid, k=10).

For each adapter, ``--rounds`` times, alternating: 64 sequential ``invoke`` / ``retrieve``
calls, then 64 concurrent ``ainvoke`` (LangChain, ``asyncio.gather``), one ``abatch`` of 64
(LangChain) and 64 concurrent ``aretrieve`` (LlamaIndex). Queries are the set's real questions
(the first 64, repeated if fewer). Prints queries/s per way (median over rounds) and the ratio to
sequential.

Run (time it alone, or under the shared timing lock)::

    python benchmarks/async_search.py --cache-dir /root/simcse-cache/retrieval
    python benchmarks/async_search.py --index PATH  # an index of --dataset already saved
    python benchmarks/async_search.py --tiny        # smoke run, tiny random model

Goal (issue #18): concurrent >= 1.6x sequential on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "integrations")]

CALLS = 64


def dataset_queries(dataset: str, data: Path) -> list[str]:
    """The judged queries of a retrieval set."""
    from simcse_rag.datasets import available_splits, load_beir

    folder = data / dataset
    return list(load_beir(folder, split=available_splits(folder)[0]).queries.values())


def build_index(
    folder: Path, *, dataset: str, data: Path, cache_dir: Path | None, tiny: bool
) -> list[str]:
    """Save a hybrid index of ``dataset`` into ``folder``; returns its queries.

    ``tiny``: the bundled sample corpus with a tiny random model (seconds, for a smoke run).
    """
    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.index.hybrid import HybridRetriever

    if tiny:
        from simcse_rag.demo import load_sample
        from simcse_rag.testing import build_tiny_bert

        encoder = SimCSEEncoder.from_pretrained(build_tiny_bert(folder.parent / "tiny"))
        sample = load_sample()
        corpus, queries = sample.corpus, list(sample.queries.values())
    else:
        from simcse_rag.datasets import available_splits, load_beir

        folder_in = data / dataset
        beir = load_beir(folder_in, split=available_splits(folder_in)[0])
        encoder = SimCSEEncoder.from_pretrained()
        corpus, queries = beir.corpus, list(beir.queries.values())
    retriever = HybridRetriever(encoder)
    if cache_dir is not None:
        retriever.load_cache(cache_dir / dataset)
    retriever.add(corpus)
    retriever.save(folder)
    return queries


def qps(run: Callable[[], Any]) -> float:
    """Queries per second of ``run`` (which makes :data:`CALLS` calls)."""
    start = time.perf_counter()
    run()
    return CALLS / (time.perf_counter() - start)


def langchain_ways(index: Any, queries: list[str]) -> dict[str, Callable[[], Any]]:
    """LangChain: sequential ``invoke``, concurrent ``ainvoke``, one ``abatch``."""
    from langchain_simcse import SimCSERetriever

    lc = SimCSERetriever(index=index, k=10)

    async def gather() -> None:
        await asyncio.gather(*(lc.ainvoke(q) for q in queries))

    return {
        "sequential invoke": lambda: [lc.invoke(q) for q in queries],
        "concurrent ainvoke": lambda: asyncio.run(gather()),
        "abatch": lambda: asyncio.run(lc.abatch(queries)),
    }


def llama_index_ways(index: Any, queries: list[str]) -> dict[str, Callable[[], Any]]:
    """LlamaIndex: sequential ``retrieve``, concurrent ``aretrieve``."""
    from llama_index_simcse import HybridRRFRetriever

    li = HybridRRFRetriever(index=index, similarity_top_k=10)

    async def gather() -> None:
        await asyncio.gather(*(li.aretrieve(q) for q in queries))

    return {
        "sequential retrieve": lambda: [li.retrieve(q) for q in queries],
        "concurrent aretrieve": lambda: asyncio.run(gather()),
    }


def measure(ways: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median queries/s of each way over ``rounds`` alternating rounds (after one warm-up)."""
    for run in ways.values():
        run()
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, run in ways.items():
            samples[name].append(qps(run))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="liveqa_medquad")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=None, help="EmbeddingCache folders")
    parser.add_argument("--index", type=Path, default=None, help="an index already saved")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="smoke run with a tiny random model")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    from simcse_rag.index.hybrid import HybridRetriever

    with tempfile.TemporaryDirectory(prefix="async-bench-") as tmp:
        folder = args.index or Path(tmp) / "index"
        if args.index is None:
            queries = build_index(
                folder,
                dataset=args.dataset,
                data=args.data,
                cache_dir=args.cache_dir,
                tiny=args.tiny,
            )
        else:
            queries = dataset_queries(args.dataset, args.data)
        index = HybridRetriever.load(folder)
        batch = (queries * (CALLS // len(queries) + 1))[:CALLS]
        report: dict[str, Any] = {"dataset": "sample" if args.tiny else args.dataset}
        report["passages"] = len(index)
        for adapter, ways in (
            ("langchain", langchain_ways(index, batch)),
            ("llama_index", llama_index_ways(index, batch)),
        ):
            rates = measure(ways, args.rounds)
            base = next(iter(rates.values()))
            report[adapter] = rates
            print(f"\n{adapter} ({report['passages']} passages, {CALLS} calls, k=10, hybrid)")
            for name, rate in rates.items():
                print(f"  {name:<22} {rate:8.1f} q/s  {rate / base:5.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
