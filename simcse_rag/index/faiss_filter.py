"""FAISS search restricted to an allowed set of labels: a metadata filter applied *inside* the
search through an ID selector in the search parameters (flat, IVF, HNSW), never by
post-filtering a fetched window, so ``k`` hits come back whenever ``k`` allowed vectors exist.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np


def allowed_labels(
    label_of: Mapping[str, int], allowed: Collection[str], n_labels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the allowed ids present, and a bitmap of them over the label range (one bit per
    label: FAISS tests it in O(1) per vector, where ``IDSelectorBatch`` hashes)."""
    labels = np.fromiter((label_of[i] for i in allowed if i in label_of), dtype=np.int64)
    bits = np.zeros(n_labels, dtype=bool)
    bits[labels] = True
    return labels, np.packbits(bits, bitorder="little")


def search_allowed(
    faiss: Any,
    index: Any,
    structure: str,
    q: np.ndarray,
    width: int,
    *,
    labels: np.ndarray,
    bitmap: np.ndarray,
    n_labels: int,
    ef_search: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, labels)`` of the top ``width`` allowed vectors for each row of ``q``.

    ``width`` must not exceed ``labels.size``. IVF rows whose probed lists held too few allowed
    vectors are searched again over every list; HNSW rows that a selective filter cut off from
    the graph are scored exactly among the allowed vectors.
    """
    sel = faiss.IDSelectorBitmap(n_labels, faiss.swig_ptr(bitmap))
    if structure == "hnsw":
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(ef_search, width))
    elif structure == "ivf":
        params = faiss.SearchParametersIVF(sel=sel, nprobe=index.nprobe)
    else:
        params = faiss.SearchParameters(sel=sel)
    scores, found = index.search(q, width, params=params)
    short = np.where((found < 0).any(axis=1))[0]
    if short.size and structure == "ivf":
        params = faiss.SearchParametersIVF(sel=sel, nprobe=index.nlist)
        scores[short], found[short] = index.search(q[short], width, params=params)
    elif short.size:
        scores[short], found[short] = exact_among(index, q[short], labels, width)
    return scores, found


def exact_among(
    index: Any, q: np.ndarray, labels: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``width`` among ``labels`` (flat / hnsw: their vectors can be rebuilt)."""
    vectors = index.reconstruct_batch(labels)
    sims = q @ vectors.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :width]
    return np.take_along_axis(sims, order, axis=1), labels[order]
