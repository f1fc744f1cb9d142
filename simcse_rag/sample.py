"""The bundled sample: a bilingual children's-health FAQ with judged queries and training pairs.

See ``simcse_rag/sample_data/README.md`` for how it was written. The demo, the cookbook and the
benchmarks load it with :func:`load_sample`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcse_rag.datasets import BeirData

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
SAMPLE_CORPUS = SAMPLE_DIR / "medical_faq.jsonl"
SAMPLE_QUERIES = SAMPLE_DIR / "medical_faq_queries.jsonl"
SAMPLE_QRELS = SAMPLE_DIR / "medical_faq_qrels.tsv"
SAMPLE_TRAIN = SAMPLE_DIR / "medical_faq_train.tsv"
SAMPLE_NAME = "bundled children's-health FAQ (simcse_rag/sample_data/medical_faq.jsonl)"


@dataclass(frozen=True)
class SampleData(BeirData):
    """The bundled sample: a :class:`~simcse_rag.datasets.BeirData` with training pairs.

    Attributes:
        corpus: 156 passages (English and Chinese), ``text`` = title + newline + body.
        queries: Query id -> text (75 queries).
        qrels: Query id -> {passage id: grade}.
        train_pairs: 312 (question, passage) training pairs, disjoint from ``queries``.
    """

    train_pairs: list[Any] = field(default_factory=list)


def load_sample() -> SampleData:
    """Load the bundled children's-health FAQ corpus, queries and qrels (package data)."""
    from simcse_rag.corpus import read_corpus
    from simcse_rag.datasets import load_qrels, load_queries
    from simcse_rag.pairs import pairs_from_tsv

    corpus = read_corpus(SAMPLE_CORPUS)
    return SampleData(
        corpus=corpus,
        queries=load_queries(SAMPLE_QUERIES),
        qrels=load_qrels(SAMPLE_QRELS),
        train_pairs=pairs_from_tsv(SAMPLE_TRAIN, {p.id: p for p in corpus}),
    )
