"""The FAISS side of :class:`~simcse_rag.index.dense.DenseIndex`: the module, its thread pool,
and building the three structures (``flat``, ``ivf``, ``hnsw``) over int64 labels.

``flat`` and ``hnsw`` are wrapped in ``IndexIDMap2`` (labels are the caller's, and the vectors
can be reconstructed to rebuild the graph); ``ivf`` stores labels itself.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

import numpy as np

from simcse_rag import threads
from simcse_rag.index._threads import openmp_thread_limit

__all__ = [
    "IVF_MIN_POINTS_PER_LIST",
    "StructureParams",
    "faiss_module",
    "faiss_threads",
    "live_vectors",
    "new_structure",
]

#: FAISS's own minimum of training vectors per IVF list.
IVF_MIN_POINTS_PER_LIST = 39


def faiss_module() -> Any:
    """The faiss module, its thread pool sized once per process (see simcse_rag.threads)."""
    import faiss

    threads.configure_faiss(faiss)
    return faiss


def faiss_threads(n_queries: int) -> contextlib.AbstractContextManager[None]:
    """Run batches of fewer than 16 queries with one FAISS thread, in the calling thread (see
    ThreadLimit for why one; openmp_thread_limit for why per thread)."""
    faiss = faiss_module()
    return openmp_thread_limit(
        faiss.omp_get_max_threads, faiss.omp_set_num_threads, 1 if n_queries < 16 else None
    )


@dataclass(frozen=True)
class StructureParams:
    """How to build a structure (checked by :class:`~simcse_rag.index.dense.DenseIndex`).

    Attributes:
        dim: Vector dimension.
        nlist: IVF lists (``None``: ``4 * sqrt(n)`` capped so every list gets enough training).
        nprobe: IVF lists searched per query (``None``: ``max(16, nlist // 10)``).
        hnsw_m: HNSW neighbours per node.
        ef_search: HNSW search breadth.
        ef_construction: HNSW build breadth.
    """

    dim: int
    nlist: int | None
    nprobe: int | None
    hnsw_m: int
    ef_search: int
    ef_construction: int


def new_structure(structure: str, params: StructureParams, train: np.ndarray | None = None) -> Any:
    """An empty FAISS index of ``structure`` (``flat``, ``ivf`` or ``hnsw``).

    Args:
        structure: Which structure to build.
        params: Its settings.
        train: Vectors to train an IVF index on (ignored by the others).

    Raises:
        ValueError: Too few training vectors for an IVF index.
    """
    faiss = faiss_module()
    dim = params.dim
    if structure == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if structure == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = params.ef_construction
        hnsw.hnsw.efSearch = params.ef_search
        return faiss.IndexIDMap2(hnsw)
    n = 0 if train is None else train.shape[0]
    auto = max(1, min(int(4 * math.sqrt(max(n, 1))), n // IVF_MIN_POINTS_PER_LIST))
    nlist = params.nlist or auto
    if n < nlist:
        raise ValueError(
            f"An IVF index with nlist={nlist} needs at least {nlist} vectors in its first "
            f"add() to train on, got {n}; add more vectors first, lower nlist, "
            "or use kind='flat'."
        )
    # faiss's Python constructor keeps a reference to the quantizer, so it lives as long as ivf.
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(train)
    ivf.nprobe = min(nlist, params.nprobe or max(16, nlist // 10))
    return ivf


def live_vectors(index: Any, live: Container[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, vectors)`` of the vectors of an ``IndexIDMap2`` whose label is in ``live``."""
    faiss = faiss_module()
    labels = faiss.vector_to_array(index.id_map).astype(np.int64)
    vectors = index.index.reconstruct_n(0, index.ntotal)
    keep = np.fromiter((lab in live for lab in labels), dtype=bool, count=labels.size)
    return labels[keep], np.ascontiguousarray(vectors[keep])
