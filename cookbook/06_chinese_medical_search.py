"""06 - Chinese medical search: jieba BM25 + dense, fused; a Chinese SimCSE model if you have one.

Shows: how simcse-rag tokenises Chinese for BM25 (jieba words, Chinese stopwords dropped,
Latin words stemmed) versus whitespace splitting (what many BM25 tutorials and LlamaIndex's
BM25Retriever do: a whole Chinese sentence becomes one token, so BM25 finds almost nothing);
and dense / BM25 / hybrid quality on Chinese patient questions. The bundled all-MiniLM-L6-v2 is
an English model, so its Chinese dense scores are weak and BM25 carries the hybrid; with a
network, ``--model shibing624/text2vec-base-chinese`` (a Chinese CoSENT/SimCSE-style model)
makes dense strong too, and ``simcse-rag adapt`` can adapt either to your corpus.

Data: ``--data`` (default ``../shared/data``) holding ``zh_med_qa`` (Chinese medical dialogue
questions -> doctor answers; a slice of ``--corpus-size`` passages and ``--max-queries``
questions). Without it (and always with ``--tiny``) the Chinese half of the bundled FAQ is used.

Time: about 4 min on 2 CPU cores with all-MiniLM-L6-v2 (2,000 passages, 200 questions);
about 10 s with ``--tiny``.

Run::

    python cookbook/06_chinese_medical_search.py
    python cookbook/06_chinese_medical_search.py --model shibing624/text2vec-base-chinese
    python cookbook/06_chinese_medical_search.py --tiny
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from _shared import DEFAULT_DATA, beir_slice, dataset_folder, load_encoder
from rank_bm25 import BM25Okapi

from simcse_rag.datasets import BeirData
from simcse_rag.demo import load_sample
from simcse_rag.evaluation.retrieval import evaluate_run
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever
from simcse_rag.index.tokenizers import tokenize

EXAMPLE = "宝宝发烧39度能不能吃布洛芬退烧"


def bundled_chinese() -> BeirData:
    """The Chinese passages and the queries written in Chinese of the bundled FAQ."""
    sample = load_sample()
    corpus = [p for p in sample.corpus if p.metadata.get("lang") == "zh"]
    ids = {p.id for p in corpus}
    qrels = {
        q: {d: g for d, g in docs.items() if d in ids}
        for q, docs in sample.qrels.items()
        if any(d in ids for d in docs) and re.search(r"[\u4e00-\u9fff]", sample.queries[q])
    }
    return BeirData(corpus, {q: sample.queries[q] for q in qrels}, qrels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=None, help="e.g. shibing624/text2vec-base-chinese")
    parser.add_argument("--corpus-size", type=int, default=2000)
    parser.add_argument("--max-queries", type=int, default=200)
    parser.add_argument("--tiny", action="store_true", help="tiny model, bundled FAQ (CI)")
    args = parser.parse_args()

    print(f"jieba (simcse-rag 'zh'): {tokenize(EXAMPLE, 'zh')}")
    print(f"whitespace split:        {EXAMPLE.split()}\n")

    folder = None if args.tiny else dataset_folder(args.data, "zh_med_qa")
    if folder is not None:
        data = beir_slice(folder, "dev", corpus_size=args.corpus_size, max_queries=args.max_queries)
        name = "zh_med_qa (slice)"
    else:
        data, name = bundled_chinese(), "bundled FAQ, Chinese half"
    print(f"{name}: {len(data.corpus)} passages, {len(data.qrels)} questions")

    encoder = load_encoder(args.tiny, args.model)
    retriever = HybridRetriever.from_passages(
        data.corpus, encoder, config=HybridConfig(tokenizer="zh"), show_progress=True
    )
    qids = sorted(data.qrels)
    texts = [data.queries[q] for q in qids]
    rows = {}
    for mode in ("dense", "bm25", "hybrid"):
        hits = retriever.search_batch(texts, k=10, mode=mode)
        rows[f"simcse-rag {mode}"] = evaluate_run(
            {q: [h.id for h in hs] for q, hs in zip(qids, hits, strict=True)}, data.qrels, ks=(10,)
        )
    # Whitespace-tokenised BM25 for comparison.
    ids = [p.id for p in data.corpus]
    naive = BM25Okapi([p.text.split() for p in data.corpus])
    run = {
        q: [ids[i] for i in naive.get_scores(t.split()).argsort()[::-1][:10]]
        for q, t in zip(qids, texts, strict=True)
    }
    rows["BM25, whitespace tokens"] = evaluate_run(run, data.qrels, ks=(10,))

    print("\n| retriever | nDCG@10 | Recall@10 | MRR@10 |\n|---|---:|---:|---:|")
    for label, m in rows.items():
        print(f"| {label} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['mrr@10']:.4f} |")

    top = retriever.search(texts[0], k=1)[0]
    print(f"\nQ: {texts[0]}\ntop hybrid hit {top.id}: {' '.join(top.text.split())[:60]}")


if __name__ == "__main__":
    main()
