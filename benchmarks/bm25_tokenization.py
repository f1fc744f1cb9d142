"""BM25-only nDCG@10 of tokenization rules on the shared retrieval sets (no encoding needed).

Each row is one :class:`~simcse_rag.index.tokenizers.EnglishRule` (single-character words and
digits kept or dropped, numbers with separators such as ``1,234.5`` kept whole or split, stopword
list, stemmer); Chinese text is segmented by jieba once and its Latin runs follow the same rule.
Scoring is the library's (bm25s matrix, Lucene idf, k1 1.5, b 0.75, query terms de-duplicated),
so a row's numbers are what ``BM25Index`` with that rule returns.

Usage::

    python benchmarks/bm25_tokenization.py                 # all three sets, Markdown table
    python benchmarks/bm25_tokenization.py --datasets zh_med_qa
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path("/work/shared/data") if Path("/work/shared/data").is_dir() else REPO / "data"
DATASETS = {"liveqa_medquad": "test", "tatqa_fin_dev": "dev", "zh_med_qa": "dev"}


def variants() -> dict[str, object]:
    """The rules compared (v1 is the rule before issue #21)."""
    from simcse_rag.index.tokenizers import TOKENIZER_RULES, EnglishRule

    short = {"min_word_chars": 2, "lone_digits": False}  # bm25s' default pattern drops both
    return {
        "v1: \\w+, lucene stopwords, stem": TOKENIZER_RULES[1],
        "drop single letters": EnglishRule(min_word_chars=2),
        "drop lone digits": EnglishRule(lone_digits=False),
        "drop both (bm25s pattern)": EnglishRule(**short),
        "numbers whole": EnglishRule(numbers="whole"),
        "numbers whole + parts": EnglishRule(numbers="both"),
        "drop both, numbers whole": EnglishRule(**short, numbers="whole"),
        "drop both, numbers whole + parts": EnglishRule(**short, numbers="both"),
        "drop both, numbers whole, no stopwords": EnglishRule(
            **short, numbers="whole", stopwords="none"
        ),
        "drop both, numbers whole, lucene_plus": EnglishRule(
            **short, numbers="whole", stopwords="lucene_plus"
        ),
        "drop both, numbers whole, no stemmer": EnglishRule(**short, numbers="whole", stem=False),
        "drop both, numbers whole, lucene_plus, no stemmer": EnglishRule(
            **short, numbers="whole", stopwords="lucene_plus", stem=False
        ),
        "drop both, numbers split, lucene_plus": EnglishRule(**short, stopwords="lucene_plus"),
    }


def leave_one_out(table: dict[str, dict[str, float]], datasets: list[str]) -> list[str]:
    """For each held-out set: the rule with the best mean on the others, and its held-out score
    against v1 (a rule is only chosen if, picked on the others, it also beats v1 held out)."""
    lines = []
    v1 = next(iter(table))
    for out in datasets:
        others = [d for d in datasets if d != out]
        best = max(table, key=lambda r: np.mean([table[r][d] for d in others]))
        got, base = table[best][out], table[v1][out]
        lines.append(
            f"- held out {out}: best on {', '.join(others)} is '{best}': "
            f"{got:.4f} vs v1 {base:.4f} ({got - base:+.4f})"
        )
    return lines


def bm25_run(
    corpus: list[list[str]], ids: list[str], queries: dict[str, list[str]], k: int = 10
) -> dict[str, list[str]]:
    """Top-``k`` ids per query, scored like ``BM25Index`` (bm25s lucene matrix)."""
    import bm25s

    vocab: dict[str, int] = {}
    token_ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in corpus]
    engine = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    m = engine.build_index_from_ids(
        unique_token_ids=list(range(len(vocab))), corpus_token_ids=token_ids, show_progress=False
    )
    data, indices, indptr = m["data"], m["indices"], m["indptr"]
    run: dict[str, list[str]] = {}
    for qid, terms in queries.items():
        tids = sorted({vocab[t] for t in terms if t in vocab})
        if not tids:
            run[qid] = []
            continue
        docs = np.concatenate([indices[indptr[t] : indptr[t + 1]] for t in tids])
        w = np.concatenate([data[indptr[t] : indptr[t + 1]] for t in tids])
        scores = np.bincount(docs, weights=w, minlength=len(ids))
        best = np.lexsort((np.arange(len(ids)), -scores))[:k]
        run[qid] = [ids[i] for i in best if scores[i] > 0]
    return run


def tokenizer_for(texts: list[str]) -> Callable[[object], list[list[str]]]:
    """Tokenize ``texts`` under a rule; jieba segments each CJK text once for all rules."""
    from simcse_rag.index.tokenizers import CJK, load_jieba, tokenize_en, tokenize_zh_pieces

    pieces = [load_jieba().lcut(t) if CJK.search(t) else None for t in texts]

    def run(rule: object) -> list[list[str]]:
        return [
            tokenize_en(t, rule) if p is None else tokenize_zh_pieces(p, rule)
            for t, p in zip(texts, pieces, strict=True)
        ]

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    args = parser.parse_args(argv)

    from simcse_rag.evaluation.retrieval import evaluate_run, load_beir

    rules = variants()
    table: dict[str, dict[str, float]] = {name: {} for name in rules}
    for ds in args.datasets:
        data = load_beir(args.data / ds, DATASETS[ds])
        ids = [p.id for p in data.corpus]
        qids = list(data.queries)
        corpus_tok = tokenizer_for([p.text for p in data.corpus])
        query_tok = tokenizer_for([data.queries[q] for q in qids])
        for name, rule in rules.items():
            run = bm25_run(corpus_tok(rule), ids, dict(zip(qids, query_tok(rule), strict=True)))
            table[name][ds] = evaluate_run(run, data.qrels, ks=(10,), metrics=("ndcg",))["ndcg@10"]
            print(f"{ds} {name}: {table[name][ds]:.4f}", file=sys.stderr, flush=True)
    print("| rule | " + " | ".join(args.datasets) + " | mean |")
    print("|---|" + "---|" * (len(args.datasets) + 1))
    for name, row in table.items():
        cells = [row[ds] for ds in args.datasets]
        print(f"| {name} | " + " | ".join(f"{c:.4f}" for c in cells) + f" | {np.mean(cells):.4f} |")
    if len(args.datasets) > 1:
        print("\n" + "\n".join(leave_one_out(table, args.datasets)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
