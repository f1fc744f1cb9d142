"""Passages longer than the model reads: how many, and does reading all of them help? (#21)

The model truncates a passage at its token limit (256 for all-MiniLM-L6-v2), so the dense leg
never sees the rest of a long passage. This script counts such passages per shared set and, on
LiveQA (MedQuAD answers are long), compares three dense scores of a passage:

* ``truncated``: the library today (the passage's first 256 tokens);
* ``maxp``: the best cosine over overlapping windows of the whole passage (windows of
  ``limit - 2`` tokens, stride half of that; Dai and Callan's MaxP, SIGIR 2019);
* ``meanp``: the cosine to the normalised mean of the window vectors (one vector per passage).

Each as a dense leg alone and in the library's default hybrid (``dist_peak``, the library's
BM25 and coverage weighting), on a subsample (every judged passage plus seeded others,
``--corpus-limit``) because every window needs its own int8 encoding. Vectors are int8 ONNX (the
passage default), kept in ``--cache-dir``; missing ones are encoded first.

Usage::

    python benchmarks/long_passages.py --cache-dir /root/simcse-cache/ranking --corpus-limit 4000
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from defaults import DATASETS, DEFAULT_DATA, query_factors  # noqa: E402
from retrieval import subsample_corpus  # noqa: E402 - a sibling script, not a package
from transfer import paired_bootstrap, per_query_ndcg  # noqa: E402

BACKEND = "onnx-int8"
log = logging.getLogger("benchmarks.long_passages")


def windows(tokenizer: Any, text: str, limit: int) -> list[str]:
    """The windows of ``text`` after its first (the truncated passage itself), as substrings:
    ``limit - 2`` tokens each (room for ``[CLS]``/``[SEP]``), starting every half window."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    n, width = len(offsets), limit - 2
    out: list[str] = []
    start = stride = width // 2
    while n > width:
        end = min(start + width, n)
        out.append(text[offsets[start][0] : offsets[end - 1][1]])
        if end >= n:
            break
        start += stride
    return out


def count_long(encoder: Any, data_dir: Path) -> None:
    """Print how many passages of each shared set exceed the model's limit."""
    from simcse_rag.datasets import load_beir

    for name, split in DATASETS.items():
        data = load_beir(data_dir / name, split)
        lengths = np.array(
            [len(ids) for ids in encoder.tokenizer([p.text for p in data.corpus])["input_ids"]]
        )
        extra = sum(
            len(windows(encoder.tokenizer, p.text, encoder.max_length)) for p in data.corpus
        )
        print(
            f"{name}: {len(lengths)} passages, {np.mean(lengths > encoder.max_length):.1%} over "
            f"{encoder.max_length} tokens, {np.mean(lengths > 512):.1%} over 512; "
            f"windows {len(lengths) + extra}"
        )


def vectors(encoder: Any, cache: Any, texts: list[str]) -> np.ndarray:
    """int8 vectors of ``texts`` from ``cache``, encoding the missing ones into it first."""
    _, missing = cache.lookup(texts, BACKEND)
    todo = list(dict.fromkeys(texts[i] for i in missing))
    if todo:
        log.warning("encoding %d texts (%s)", len(todo), BACKEND)
        cache.put(todo, encoder.encode(todo, batch_size=64, backend=BACKEND), BACKEND)
    return cache.lookup(texts, BACKEND)[0]


def dense_scores(encoder: Any, cache: Any, corpus: list[Any], queries: np.ndarray) -> dict:
    """Query x passage cosine matrices: ``truncated``, ``maxp`` and ``meanp``."""
    base = vectors(encoder, cache, [p.text for p in corpus])
    parts = [windows(encoder.tokenizer, p.text, encoder.max_length) for p in corpus]
    owner = np.array([i for i, ws in enumerate(parts) for _ in ws], dtype=np.int64)
    extra = vectors(encoder, cache, [w for ws in parts for w in ws])
    truncated = queries @ base.T
    maxp = truncated.copy()
    np.maximum.at(maxp.T, owner, (queries @ extra.T).T)
    mean = base.copy()
    np.add.at(mean, owner, extra)
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    log.warning("%d passages, %d long, %d extra windows", len(corpus), len(set(owner)), len(owner))
    return {"truncated": truncated, "maxp": maxp, "meanp": queries @ mean.T}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, required=True, help="int8 vectors (read+write)")
    parser.add_argument("--corpus-limit", type=int, default=4000)
    parser.add_argument("--no-counts", action="store_true", help="skip the per-set counts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")

    from simcse_rag.datasets import load_beir
    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.index.cache import EmbeddingCache
    from simcse_rag.index.fusion import DEFAULT_FUSION, fuse
    from simcse_rag.index.hybrid import HybridConfig, HybridRetriever

    encoder = SimCSEEncoder.from_pretrained(device="cpu")
    if not args.no_counts:
        count_long(encoder, args.data)
    data = subsample_corpus(load_beir(args.data / "liveqa_medquad", "test"), args.corpus_limit)
    folder = args.cache_dir / "liveqa_medquad"
    cache = EmbeddingCache(encoder.fingerprint(), encoder.dim)
    if (folder / "embeddings.json").is_file():
        cache.merge(EmbeddingCache.read(folder))
    qids = list(data.queries)
    texts = [data.queries[q] for q in qids]
    retriever = HybridRetriever(encoder, HybridConfig(passage_backend=BACKEND))
    scores = dense_scores(encoder, cache, data.corpus, retriever.encode_queries(texts))
    folder.mkdir(parents=True, exist_ok=True)
    cache.write(folder)
    retriever.cache.merge(cache)
    retriever.add(data.corpus)  # every vector cached: builds BM25 and FAISS only
    bm25 = {
        q: [(h.id, h.score) for h in hs]
        for q, hs in zip(qids, retriever.search_batch(texts, k=100, mode="bm25"), strict=True)
    }
    factors, _ = query_factors(encoder, data)
    ids = [p.id for p in data.corpus]
    per: dict[str, dict[str, float]] = {}
    for name, matrix in scores.items():
        dense = {
            q: [(ids[t], float(matrix[j, t])) for t in np.argsort(-matrix[j], kind="stable")[:100]]
            for j, q in enumerate(qids)
        }
        per[f"{name} dense"] = per_query_ndcg(
            {q: [d for d, _ in r[:10]] for q, r in dense.items()}, data.qrels
        )
        fused = {
            q: [
                h.id
                for h in fuse(
                    {"dense": dense[q], "bm25": bm25[q]},
                    DEFAULT_FUSION,
                    weights={"dense": factors[q], "bm25": 1.0},
                    limit=10,
                )
            ]
            for q in qids
        }
        per[f"{name} hybrid"] = per_query_ndcg(fused, data.qrels)
    print(f"\nLiveQA, {len(data.corpus)} passages, {len(per['truncated dense'])} judged queries")
    for key, values in per.items():
        print(f"{key:18s} nDCG@10 {np.mean(list(values.values())):.4f}")
    for leg in ("dense", "hybrid"):
        for name in ("maxp", "meanp"):
            mean, lo, hi = paired_bootstrap(per[f"{name} {leg}"], per[f"truncated {leg}"])
            print(f"{name} - truncated, {leg}: {mean:+.4f} [95% CI {lo:+.4f}, {hi:+.4f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
