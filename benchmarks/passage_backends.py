"""Quality cost of ONNX int8 passage (and query) vectors: nDCG@10, dense and hybrid.

For each retrieval set, one ``HybridRetriever`` per (passage backend, query backend) pair over
the same passages, same model (all-MiniLM-L6-v2), same fusion defaults:

* fp32 passages + fp32 queries (``torch`` / ``torch``): the reference;
* int8 passages + int8 queries (``onnx-int8`` / ``onnx-int8``): what ``auto`` would give;
* the two mixed pairs, to see which side the cost comes from.

Passage vectors come from EmbeddingCache folders (``--fp32-cache``: e.g. the ones
``benchmarks/retrieval.py --cache-dir`` writes; ``--int8-cache``: filled here on first use), so
a re-run encodes nothing. ``--corpus-limit`` keeps every judged passage plus seeded random
others (``benchmarks/retrieval.py``'s ``subsample_corpus``).

Run::

    python benchmarks/passage_backends.py --fp32-cache ~/simcse-cache/retrieval \\
        --int8-cache /tmp/int8-cache --corpus-limit 6000
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from retrieval import DATASETS, subsample_corpus  # noqa: E402

PAIRS = (
    ("torch", "torch"),
    ("onnx-int8", "onnx-int8"),
    ("onnx-int8", "torch"),
    ("torch", "onnx-int8"),
)
log = logging.getLogger("benchmarks.passage_backends")


def passage_cache(encoder: Any, texts: list[str], folder: Path, backend: str) -> Any:
    """The vectors of ``texts`` made by ``backend``, read from ``folder`` (filled if needed)."""
    from simcse_rag.index.cache import EmbeddingCache

    cache = EmbeddingCache(encoder.fingerprint(), encoder.dim)
    if (folder / "embeddings.json").is_file():
        cache.merge(EmbeddingCache.read(folder))
    _, missing = cache.lookup(texts, backend)
    todo = list(dict.fromkeys(texts[i] for i in missing))
    if todo:
        log.warning("encoding %d passages with %s", len(todo), backend)
        cache.put(todo, encoder.encode(todo, backend=backend, show_progress=True), backend)
        folder.mkdir(parents=True, exist_ok=True)
        cache.write(folder)
    return cache


def evaluate(data: Any, encoder: Any, caches: dict[str, Any], pair: tuple[str, str]) -> dict:
    from simcse_rag.evaluation.retrieval import evaluate_run
    from simcse_rag.index.hybrid import HybridConfig, HybridRetriever

    passages, queries = pair
    config = HybridConfig(passage_backend=passages, query_backend=queries)
    retriever = HybridRetriever(encoder, config)
    texts = [p.text for p in data.corpus]
    vectors, missing = caches[passages].lookup(texts, passages)
    assert not missing, "every passage vector comes from the cache"
    retriever.cache.put(texts, vectors, passages)
    retriever.add(data.corpus)
    ids = list(data.queries)
    row = {"passages": passages, "queries": queries}
    for mode in ("dense", "hybrid"):
        run = {}
        for start in range(0, len(ids), 256):
            batch = ids[start : start + 256]
            hits = retriever.search_batch([data.queries[q] for q in batch], k=10, mode=mode)
            run.update({q: [h.id for h in hs] for q, hs in zip(batch, hits, strict=True)})
        row[mode] = 100 * evaluate_run(run, data.qrels, ks=(10,))["ndcg@10"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--fp32-cache", type=Path, required=True)
    parser.add_argument("--int8-cache", type=Path, required=True)
    parser.add_argument("--corpus-limit", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")

    from simcse_rag.datasets import load_beir
    from simcse_rag.encoder import SimCSEEncoder

    encoder = SimCSEEncoder.from_pretrained(device="cpu")
    results: dict[str, Any] = {}
    print("| dataset | passages | queries | dense | hybrid | dense loss | hybrid loss |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name in args.datasets:
        data = load_beir(args.data / name, DATASETS[name])
        if args.corpus_limit and len(data.corpus) > args.corpus_limit:
            data = subsample_corpus(data, args.corpus_limit)
        texts = [p.text for p in data.corpus]
        caches = {
            "torch": passage_cache(encoder, texts, args.fp32_cache / name, "torch"),
            "onnx-int8": passage_cache(encoder, texts, args.int8_cache / name, "onnx-int8"),
        }
        rows = [evaluate(data, encoder, caches, pair) for pair in PAIRS]
        ref = rows[0]
        for row in rows:
            row["dense_loss"] = ref["dense"] - row["dense"]
            row["hybrid_loss"] = ref["hybrid"] - row["hybrid"]
            print(
                f"| {name} ({len(data.corpus)} passages) | {row['passages']} | {row['queries']} "
                f"| {row['dense']:.2f} | {row['hybrid']:.2f} | {row['dense_loss']:.2f} "
                f"| {row['hybrid_loss']:.2f} |",
                flush=True,
            )
        results[name] = rows
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
