"""TermBatch: documents tokenized for BM25 before they join an index.

Tokenizing is most of the cost of adding documents to a
:class:`~simcse_rag.index.bm25.BM25Index` (jieba, the stemmer), and it needs nothing from the
index: :func:`tokenize_batch` numbers each batch's terms in a vocabulary of its own, so it can
run outside the index's lock (while the dense vectors are encoded), and
:meth:`~simcse_rag.index.bm25.BM25Index.add_tokenized` maps those numbers into the index's
vocabulary in one pass. New terms get the index ids they would have got from tokenizing into
the index directly (first appearance order).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["TermBatch", "tokenize_batch"]


@dataclass(frozen=True)
class TermBatch:
    """Documents as term ids of the batch's own vocabulary.

    Attributes:
        terms: The batch's terms; a term's position is its id in :attr:`docs`.
        docs: int32 term ids per document, in text order.
    """

    terms: list[str]
    docs: list[np.ndarray]


def tokenize_batch(
    tokenize: Callable[[str], list[str]], texts: Sequence[str], *, yield_gil: bool = False
) -> TermBatch:
    """Tokenize ``texts`` into a :class:`TermBatch` (ids in first appearance order).

    Args:
        tokenize: One text -> its terms.
        texts: The documents.
        yield_gil: Release the GIL after each text. For a background thread beside threads
            that need the GIL briefly and often (ONNX Runtime workers between calls): without
            it they can wait a whole switch interval (5 ms, about one call) each time.
    """
    vocab: dict[str, int] = {}
    docs: list[np.ndarray] = []
    for text in texts:
        docs.append(
            np.asarray([vocab.setdefault(t, len(vocab)) for t in tokenize(text)], dtype=np.int32)
        )
        if yield_gil:
            time.sleep(0)
    return TermBatch(list(vocab), docs)
