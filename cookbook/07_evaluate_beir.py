"""07 - Evaluate a retriever (ours, or your own) on BEIR-layout data: nDCG@10, Recall@100, MRR@10.

Shows: loading a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``),
evaluating simcse-rag's dense, BM25 and hybrid modes, and evaluating *your own* retriever with
the same metric code: anything that maps a query to a ranked list of passage ids (here a plain
``rank_bm25`` whitespace baseline) plugs into :func:`simcse_rag.evaluation.retrieval.evaluate_run`.
Pass ``--model DIR`` to evaluate an adapted model (recipes 04 / 05).

Data: ``--data`` is a BEIR folder (default ``../shared/data/liveqa_medquad``, split ``test``).
With ``--tiny`` the bundled FAQ is written out in BEIR layout and evaluated instead.

Time: about 4 min on 2 CPU cores for the default 3,000-passage slice with all-MiniLM-L6-v2
(``--corpus-size 0`` evaluates the full 17k corpus, about 20 min); about 10 s with ``--tiny``.

Run::

    python cookbook/07_evaluate_beir.py
    python cookbook/07_evaluate_beir.py --data ../shared/data/tatqa_fin_dev --split dev
    python cookbook/07_evaluate_beir.py --model runs/medical-adapted
    python cookbook/07_evaluate_beir.py --tiny
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _shared import DEFAULT_DATA, beir_slice, load_encoder
from rank_bm25 import BM25Okapi

from simcse_rag.demo import SAMPLE_CORPUS, SAMPLE_QRELS, SAMPLE_QUERIES
from simcse_rag.evaluation.retrieval import evaluate_run
from simcse_rag.index.hybrid import HybridRetriever

KS = (10, 100)


def write_bundled_as_beir(folder: Path) -> Path:
    """Copy the bundled FAQ into BEIR layout (what your own data should look like)."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_bytes(SAMPLE_CORPUS.read_bytes())
    (folder / "queries.jsonl").write_bytes(SAMPLE_QUERIES.read_bytes())
    (folder / "qrels" / "test.tsv").write_bytes(SAMPLE_QRELS.read_bytes())
    return folder


def my_retriever(corpus) -> Callable[[str, int], list[str]]:  # noqa: ANN001
    """Your own retriever goes here: any ``(query, k) -> ranked ids``. Example: rank_bm25 with
    whitespace tokens (what many tutorials do; no stemming, no Chinese word segmentation)."""
    ids = [p.id for p in corpus]
    bm25 = BM25Okapi([p.text.lower().split() for p in corpus])

    def search(query: str, k: int) -> list[str]:
        scores = bm25.get_scores(query.lower().split())
        return [ids[i] for i in scores.argsort()[::-1][:k]]

    return search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "liveqa_medquad")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default=None, help="model to evaluate (default: bundled)")
    parser.add_argument("--corpus-size", type=int, default=3000, help="0 = full corpus")
    parser.add_argument("--max-queries", type=int, default=0, help="0 = every judged query")
    parser.add_argument("--tiny", action="store_true", help="tiny model on the bundled FAQ")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder, split = args.data, args.split
        if args.tiny:
            folder, split = write_bundled_as_beir(Path(tmp) / "medical_faq"), "test"
        data = beir_slice(folder, split, corpus_size=args.corpus_size, max_queries=args.max_queries)
    print(f"{folder.name}: {len(data.corpus)} passages, {len(data.qrels)} judged queries")

    encoder = load_encoder(args.tiny, args.model)
    t0 = time.perf_counter()
    retriever = HybridRetriever.from_passages(data.corpus, encoder, show_progress=True)
    print(f"indexed in {time.perf_counter() - t0:.0f} s")

    qids = sorted(data.qrels)
    texts = [data.queries[q] for q in qids]
    results = {}
    for mode in ("dense", "bm25", "hybrid"):
        hits = retriever.search_batch(texts, k=max(KS), mode=mode)
        run = {q: [h.id for h in hs] for q, hs in zip(qids, hits, strict=True)}
        results[f"simcse-rag {mode}"] = evaluate_run(run, data.qrels, ks=KS)
    mine = my_retriever(data.corpus)
    results["your retriever (rank_bm25)"] = evaluate_run(
        {q: mine(t, max(KS)) for q, t in zip(qids, texts, strict=True)}, data.qrels, ks=KS
    )

    print("\n| retriever | nDCG@10 | Recall@100 | MRR@10 |\n|---|---:|---:|---:|")
    for name, m in results.items():
        print(f"| {name} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | {m['mrr@10']:.4f} |")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
