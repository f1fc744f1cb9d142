"""The batch contract every index keeps: checked ``add`` batches, ``(ids, scores)`` results.

``add(ids, payloads)`` takes one payload (a text or a vector) per unique id; ``search`` returns
two ``(queries, width)`` arrays, ids of dtype object and float32 scores, whatever the backend
(FAISS, bm25s, Milvus). These two helpers keep that contract, and its error messages, the same in
:class:`~simcse_rag.index.dense.DenseIndex`, :class:`~simcse_rag.index.bm25.BM25Index` and their
Milvus counterparts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["check_add_batch", "empty_results"]


def check_add_batch(ids: Sequence[str], n_items: int, what: str) -> None:
    """Check that an ``add`` call pairs each of ``ids`` (already checked strings) with one item.

    Args:
        ids: The batch's ids.
        n_items: How many payloads came with them.
        what: The payloads' plural name in messages, e.g. ``"texts"``.

    Raises:
        ValueError: The counts differ, or an id repeats (the first repeated one is named).
    """
    if n_items != len(ids):
        raise ValueError(f"Got {len(ids)} ids but {n_items} {what}; pass one per id.")
    if len(set(ids)) != len(ids):
        counts = Counter(ids)
        dup = next(i for i in ids if counts[i] > 1)
        raise ValueError(f"Duplicate id {dup!r} in one add() call; ids must be unique.")


def empty_results(n_queries: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, scores)`` arrays of shape ``(n_queries, width)`` to fill: object and float32."""
    return (
        np.empty((n_queries, width), dtype=object),
        np.zeros((n_queries, width), dtype=np.float32),
    )
