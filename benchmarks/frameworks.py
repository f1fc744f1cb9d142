"""Our LangChain / LlamaIndex adapters vs the frameworks' own hybrid recipes, one run.

Same model, same data, same candidate depth for every system:

LangChain
  * ``SimCSERetriever`` (ours): BM25 (jieba for Chinese) + FAISS, weighted 1-based RRF by id.
  * ``EnsembleRetriever([BM25Retriever, FAISS retriever])``: the documented hybrid recipe
    (whitespace BM25 via rank_bm25, RRF merged by page content); also with ``jieba.lcut`` as
    ``preprocess_func`` (the hand-tuned variant) and each part alone.
LlamaIndex
  * ``HybridRRFRetriever.from_nodes`` (ours).
  * ``HybridRRFRetriever(retrievers=[vector, bm25])``: our fusion over LlamaIndex's own retrievers.
  * ``QueryFusionRetriever([vector, bm25], mode="reciprocal_rerank", num_queries=1)``: the
    documented hybrid recipe (no LLM query generation), and each part alone.

The corpus is encoded once and the vectors handed to every system (FAISS ``from_embeddings``,
nodes with ``embedding`` set, our index's embedding cache), so ``build s`` is index construction
only; the one-off encoding time is printed per dataset. Latency is per query, one query per call,
query encoding included, with ``--threads`` torch threads (default 1). Metrics: nDCG@10,
Recall@10, MRR@10 over the sampled judged queries.

Run::

    python benchmarks/frameworks.py                       # zh_med_qa + tatqa_fin_dev, 300 queries
    python benchmarks/frameworks.py --datasets tatqa_fin_dev --max-queries 100   # quick look
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from simcse_rag.datasets import BeirData, load_beir
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.evaluation.retrieval import evaluate_run
from simcse_rag.index.hybrid import HybridRetriever

ROOT = Path(__file__).resolve().parents[1]
Search = Callable[[str], list[str]]


@dataclass
class System:
    framework: str
    name: str
    build_s: float
    search: Search


def _timed(build: Callable[[], Search]) -> tuple[float, Search]:
    start = time.perf_counter()
    search = build()
    return time.perf_counter() - start, search


def _our_index(encoder: SimCSEEncoder, texts: list[str], vectors: np.ndarray) -> HybridRetriever:
    index = HybridRetriever(encoder)
    index.cache.put(texts, vectors)  # the shared one-off encoding; add() finds every text cached
    return index


def langchain_systems(
    data: BeirData, encoder: SimCSEEncoder, vectors: np.ndarray, k: int, depth: int
) -> list[System]:
    import jieba
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document

    from langchain_simcse import SimCSEEmbeddings, SimCSERetriever

    texts = [p.text for p in data.corpus]
    docs = [Document(page_content=p.text, id=p.id) for p in data.corpus]
    embeddings = SimCSEEmbeddings(encoder=encoder)
    store: dict[str, object] = {}

    def ours(mode: str) -> Search:
        if "ours" not in store:
            index = _our_index(encoder, texts, vectors)
            index.add(data.corpus)
            store["ours"] = index
        retriever = SimCSERetriever(index=store["ours"], k=k, mode=mode, candidates=depth)
        return lambda q: [d.id for d in retriever.invoke(q)]

    def faiss() -> Search:
        pairs = list(zip(texts, vectors.tolist(), strict=True))
        vs = FAISS.from_embeddings(pairs, embeddings, ids=[p.id for p in data.corpus])
        store["faiss"] = vs.as_retriever(search_kwargs={"k": depth})
        retriever = vs.as_retriever(search_kwargs={"k": k})
        return lambda q: [d.id for d in retriever.invoke(q)]

    def bm25(preprocess: Callable[[str], list[str]] | None, key: str) -> Search:
        kwargs = {"preprocess_func": preprocess} if preprocess else {}
        store[key] = BM25Retriever.from_documents(docs, k=depth, **kwargs)
        retriever = BM25Retriever.from_documents(docs, k=k, **kwargs)
        return lambda q: [d.id for d in retriever.invoke(q)]

    def ensemble(key: str) -> Search:
        retriever = EnsembleRetriever(retrievers=[store[key], store["faiss"]], weights=[0.5, 0.5])
        return lambda q: [d.id for d in retriever.invoke(q)[:k]]

    systems = []
    for name, build in [
        ("SimCSERetriever (ours, hybrid)", lambda: ours("hybrid")),
        ("SimCSERetriever (ours, mode=bm25)", lambda: ours("bm25")),
        ("FAISS.from_embeddings (dense)", faiss),
        ("BM25Retriever (whitespace)", lambda: bm25(None, "bm25")),
        ("BM25Retriever (jieba.lcut)", lambda: bm25(jieba.lcut, "bm25_jieba")),
        ("EnsembleRetriever(BM25, FAISS)", lambda: ensemble("bm25")),
        ("EnsembleRetriever(BM25 jieba, FAISS)", lambda: ensemble("bm25_jieba")),
    ]:
        build_s, search = _timed(build)
        systems.append(System("LangChain", name, build_s, search))
    return systems


def llama_index_systems(
    data: BeirData, encoder: SimCSEEncoder, vectors: np.ndarray, k: int, depth: int
) -> list[System]:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever

    from llama_index_simcse import HybridRRFRetriever, SimCSEEmbedding

    texts = [p.text for p in data.corpus]
    embed_model = SimCSEEmbedding(encoder=encoder)

    def nodes() -> list[TextNode]:
        return [
            TextNode(id_=p.id, text=p.text, embedding=v)
            for p, v in zip(data.corpus, vectors.tolist(), strict=True)
        ]

    def ours() -> Search:
        retriever = HybridRRFRetriever(
            index=_our_index(encoder, texts, vectors), similarity_top_k=k, candidates=depth
        )
        retriever.add_nodes(nodes())
        return lambda q: [n.node.node_id for n in retriever.retrieve(q)]

    store: dict[str, object] = {}

    def vector() -> Search:
        index = VectorStoreIndex(nodes(), embed_model=embed_model)
        store["vector"] = index.as_retriever(similarity_top_k=depth)
        retriever = index.as_retriever(similarity_top_k=k)
        return lambda q: [n.node.node_id for n in retriever.retrieve(q)]

    def bm25() -> Search:
        store["bm25"] = BM25Retriever.from_defaults(nodes=nodes(), similarity_top_k=depth)
        retriever = BM25Retriever.from_defaults(nodes=nodes(), similarity_top_k=k)
        return lambda q: [n.node.node_id for n in retriever.retrieve(q)]

    def our_fusion() -> Search:
        retriever = HybridRRFRetriever(
            retrievers=[store["vector"], store["bm25"]], similarity_top_k=k
        )
        return lambda q: [n.node.node_id for n in retriever.retrieve(q)]

    def query_fusion() -> Search:
        # QueryFusionRetriever resolves an LLM even when it generates no queries (OpenAI by
        # default); MockLLM is never called with num_queries=1.
        retriever = QueryFusionRetriever(
            [store["vector"], store["bm25"]],
            llm=MockLLM(),
            mode="reciprocal_rerank",
            num_queries=1,
            use_async=False,
            similarity_top_k=k,
        )
        return lambda q: [n.node.node_id for n in retriever.retrieve(q)]

    systems = []
    for name, build in [
        ("HybridRRFRetriever.from_nodes (ours)", ours),
        ("VectorStoreIndex retriever (dense)", vector),
        ("BM25Retriever (bm25s)", bm25),
        ("HybridRRFRetriever(retrievers=[vector, bm25]) (ours)", our_fusion),
        ("QueryFusionRetriever(reciprocal_rerank)", query_fusion),
    ]:
        build_s, search = _timed(build)
        systems.append(System("LlamaIndex", name, build_s, search))
    return systems


def evaluate(system: System, queries: dict[str, str], qrels: dict[str, dict[str, int]], k: int):
    system.search("warm-up query")
    run: dict[str, list[str]] = {}
    latencies = []
    for qid, text in queries.items():
        start = time.perf_counter()
        run[qid] = system.search(text)
        latencies.append((time.perf_counter() - start) * 1000)
    metrics = evaluate_run(run, qrels, ks=(k,))
    latencies.sort()
    metrics["p50_ms"] = statistics.median(latencies)
    metrics["p95_ms"] = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--datasets", nargs="+", default=["zh_med_qa", "tatqa_fin_dev"])
    parser.add_argument("--model", default=None, help="model folder or id (default: bundled)")
    parser.add_argument("--max-queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=10, help="hits returned and metric cut-off")
    parser.add_argument("--depth", type=int, default=50, help="candidates from each source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads while querying (1 keeps single-query latency stable on a busy "
        "machine); the corpus is encoded with torch's default",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("jieba").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    encode_threads = torch.get_num_threads()
    encoder = SimCSEEncoder.from_pretrained(args.model, device=args.device)
    print(f"model: {encoder!r}\n")
    rows = []
    for name in args.datasets:
        folder = args.data / name
        split = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))[0]
        data = load_beir(folder, split)
        qids = sorted(q for q, judged in data.qrels.items() if any(g >= 1 for g in judged.values()))
        qids = sorted(random.Random(args.seed).sample(qids, min(args.max_queries, len(qids))))
        queries = {q: data.queries[q] for q in qids}
        qrels = {q: data.qrels[q] for q in qids}
        torch.set_num_threads(encode_threads)
        start = time.perf_counter()
        vectors = encoder.encode([p.text for p in data.corpus], show_progress=True)
        encode_s = time.perf_counter() - start
        torch.set_num_threads(args.threads)
        print(
            f"{name} ({split}): {len(data.corpus)} docs, {len(queries)} queries; "
            f"corpus encoded once in {encode_s:.1f}s",
            file=sys.stderr,
        )
        systems = langchain_systems(data, encoder, vectors, args.k, args.depth)
        systems += llama_index_systems(data, encoder, vectors, args.k, args.depth)
        for system in systems:
            metrics = evaluate(system, queries, qrels, args.k)
            rows.append((name, system, metrics))
            print(f"  {system.framework:10s} {system.name:55s} {metrics}", file=sys.stderr)

    k = args.k
    print(
        f"| dataset | framework | system | nDCG@{k} | Recall@{k} | MRR@{k} | build s | "
        "p50 ms | p95 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, system, m in rows:
        print(
            f"| {name} | {system.framework} | {system.name} | {m[f'ndcg@{k}']:.4f} | "
            f"{m[f'recall@{k}']:.4f} | {m[f'mrr@{k}']:.4f} | {system.build_s:.2f} | "
            f"{m['p50_ms']:.1f} | {m['p95_ms']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
