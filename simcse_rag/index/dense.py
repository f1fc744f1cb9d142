"""DenseIndex: FAISS inner-product search over unit vectors, keyed by string ids.

Kinds:

* ``flat``: exact search (``IndexFlatIP``).
* ``ivf``: inverted lists (``IndexIVFFlat``), trained on the first ``add``; ``nlist`` defaults to
  ``4 * sqrt(n)`` capped so every list gets at least 39 training vectors (FAISS's own minimum).
* ``hnsw``: graph search (``IndexHNSWFlat``, M=32, efSearch=128); no training, good recall.
* ``auto``: ``flat`` while the index holds fewer than :data:`AUTO_EXACT_LIMIT` vectors, converted
  to ``hnsw`` once it grows past it. Up to that size exact search costs about as much as query
  encoding; past it, its cost grows linearly while HNSW's stays nearly flat (timings in
  docs/benchmarks.md, "Indexes").

String ids map to FAISS int64 labels allocated from a counter (labels are never reused).
Delete/upsert: ``flat`` and ``ivf`` remove vectors in place (``remove_ids``). FAISS's HNSW cannot
remove vectors, so ``hnsw`` deletes by tombstone: the label is dropped from the id map, searches
over-fetch and filter, and the graph is rebuilt from the live vectors once tombstones exceed a
quarter of it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simcse_rag import _io, _validate
from simcse_rag.index import faiss_filter
from simcse_rag.index.batch import check_add_batch, empty_results
from simcse_rag.index.faiss_structures import (
    StructureParams,
    faiss_module,
    faiss_threads,
    live_vectors,
    new_structure,
)
from simcse_rag.index.filters import AllowedCache

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
KINDS: tuple[str, ...] = ("auto", "flat", "ivf", "hnsw")
#: ``auto`` searches exactly below this many vectors and switches to HNSW above.
AUTO_EXACT_LIMIT = 100_000
_CONFIG = "dense.json"
_FAISS_FILE = "dense.faiss"
_TOMBSTONE_RATIO = 0.25


class DenseIndex:
    """Inner-product nearest-neighbour index over string ids (vectors should be unit-length).

    Args:
        dim: Vector dimension.
        kind: ``"auto"``, ``"flat"``, ``"ivf"`` or ``"hnsw"`` (see the module docstring).
        nlist: IVF lists (default ``4 * sqrt(n)`` at training time, capped at ``n // 39``).
        nprobe: IVF lists searched per query (default ``max(16, nlist // 10)``).
        hnsw_m: HNSW neighbours per node.
        ef_search: HNSW search breadth (raised to ``k`` when ``k`` is larger).
        ef_construction: HNSW build breadth.
    """

    def __init__(
        self,
        dim: int,
        kind: str = "auto",
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        hnsw_m: int = 32,
        ef_search: int = 128,
        ef_construction: int = 200,
    ) -> None:
        dim = _validate.positive_int(dim, "dim")
        if kind not in KINDS:
            raise ValueError(
                f"Unknown dense index kind {kind!r}; choose one of: {', '.join(KINDS)}."
            )
        nlist = _validate.optional_positive_int(nlist, "nlist")
        nprobe = _validate.optional_positive_int(nprobe, "nprobe")
        hnsw_m = _validate.positive_int(hnsw_m, "hnsw_m")
        ef_search = _validate.positive_int(ef_search, "ef_search")
        ef_construction = _validate.positive_int(ef_construction, "ef_construction")
        self.dim = dim
        self.kind = kind
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.ef_construction = ef_construction
        self._structure = "flat" if kind == "auto" else kind
        self._index: Any = None
        self._label_of: dict[str, int] = {}
        self._id_of: dict[int, str] = {}
        self._next_label = 0
        self._tombstones = 0
        self._allowed = AllowedCache()  # filter id set -> (labels, bitmap)

    # ------------------------------------------------------------------ structure
    @property
    def structure(self) -> str:
        """The FAISS structure in use now: ``flat``, ``ivf`` or ``hnsw``."""
        return self._structure

    def _new_faiss(self, structure: str, train: np.ndarray | None = None) -> Any:
        params = StructureParams(
            self.dim,
            self.nlist,
            self.nprobe,
            self.hnsw_m,
            self.ef_search,
            self.ef_construction,
        )
        return new_structure(structure, params, train)

    def _rebuild(self, structure: str) -> None:
        labels, vectors = live_vectors(self._index, self._id_of)
        index = self._new_faiss(structure, vectors)
        if labels.size:
            index.add_with_ids(vectors, labels)
        self._index, self._structure, self._tombstones = index, structure, 0

    # ------------------------------------------------------------------ updates
    def __len__(self) -> int:
        return len(self._label_of)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._label_of

    @property
    def ids(self) -> list[str]:
        """Ids currently indexed (insertion order of their latest version)."""
        return list(self._label_of)

    @property
    def trains_on_first_add(self) -> bool:
        """Whether the next :meth:`add` trains the structure (an IVF index not yet trained):
        callers that insert in chunks give that call every vector instead."""
        return self._index is None and self._structure == "ivf"

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors; an id already present is replaced (upsert).

        Args:
            ids: One unique, non-empty string per row.
            vectors: ``(n, dim)`` array (converted to contiguous float32).

        Raises:
            ValueError: Shape mismatch, repeated or empty ids, non-finite values, or too few
                vectors to train an IVF index.
        """
        ids = _validate.str_ids(ids)
        matrix = _validate.float_matrix(vectors, self.dim)
        check_add_batch(ids, matrix.shape[0], "vectors")
        if not ids:
            return
        self.delete([i for i in ids if i in self._label_of])
        if self._index is None:
            self._index = self._new_faiss(self._structure, matrix)
        labels = np.arange(self._next_label, self._next_label + len(ids), dtype=np.int64)
        self._next_label += len(ids)
        self._index.add_with_ids(matrix, labels)
        self._allowed.clear()
        for doc_id, label in zip(ids, labels.tolist(), strict=False):
            self._label_of[doc_id] = label
            self._id_of[label] = doc_id
        if self.kind == "auto" and self._structure == "flat" and len(self) > AUTO_EXACT_LIMIT:
            logger.info(
                "DenseIndex: %d vectors > %d, switching to HNSW", len(self), AUTO_EXACT_LIMIT
            )
            self._rebuild("hnsw")

    def delete(self, ids: Iterable[str]) -> int:
        """Remove vectors by id; unknown ids are ignored.

        Returns:
            The number of vectors removed.
        """
        faiss = faiss_module()
        labels = [
            self._label_of.pop(i)
            for i in dict.fromkeys(_validate.str_ids(ids))
            if i in self._label_of
        ]
        for label in labels:
            del self._id_of[label]
        self._allowed.clear()
        if not labels:
            return 0
        if self._structure == "hnsw":
            self._tombstones += len(labels)
            if self._tombstones > _TOMBSTONE_RATIO * self._index.ntotal:
                self._rebuild("hnsw")
        else:
            self._index.remove_ids(faiss.IDSelectorBatch(np.asarray(labels, dtype=np.int64)))
        return len(labels)

    # ------------------------------------------------------------------ search
    def search(
        self, queries: np.ndarray, k: int, *, allowed: Collection[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ids by inner product for each query row.

        Args:
            queries: ``(m, dim)`` array (a ``(dim,)`` vector is rejected: reshape to ``(1, dim)``).
            k: Results per query (> 0); clamped to the number of vectors.
            allowed: If given, only these ids can be returned (a metadata filter's id set): FAISS
                skips every other vector during the search; ids not in the index are ignored.

        Returns:
            ``(ids, scores)``: ``(m, min(k, len(self)))`` arrays of dtype object (str) and float32
            (with ``allowed``: ``min(k, allowed ids present)`` wide), best first. No ``-1`` /
            missing ids ever appear.
        """
        k = _validate.check_k(k)
        q = _validate.float_matrix(queries, self.dim, "queries")
        if allowed is not None:
            return self._search_allowed(q, k, allowed)
        width = min(k, len(self))
        out_ids, out_scores = empty_results(q.shape[0], width)
        if width == 0 or q.shape[0] == 0:
            return out_ids, out_scores
        fetch = min(width + self._tombstones, self._index.ntotal)
        with faiss_threads(q.shape[0]):
            scores, labels = self._raw_search(q, fetch)
            if self._structure == "ivf":
                scores, labels = self._fill_ivf_gaps(q, scores, labels, width)
        id_of = self._id_of
        for row in range(q.shape[0]):
            found = [
                (id_of[lab], s)
                for lab, s in zip(labels[row].tolist(), scores[row].tolist(), strict=False)
                if lab in id_of
            ]
            if len(found) < width:  # tombstones crowded the results: search wider
                found = self._search_row_exhaustive(q[row : row + 1], width)
            out_ids[row] = [f[0] for f in found[:width]]
            out_scores[row] = [f[1] for f in found[:width]]
        return out_ids, out_scores

    def _search_allowed(
        self, q: np.ndarray, k: int, allowed: Collection[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search restricted to ``allowed`` through a FAISS ID selector (filter before ranking).

        Tombstoned HNSW labels are not in the id map, so they are never in the selector either.
        """
        labels, bitmap = self._allowed.get(
            allowed, lambda ids: faiss_filter.allowed_labels(self._label_of, ids, self._next_label)
        )
        width = min(k, labels.size)
        out_ids, out_scores = empty_results(q.shape[0], width)
        if width == 0 or q.shape[0] == 0:
            return out_ids, out_scores
        with faiss_threads(q.shape[0]):
            scores, found = faiss_filter.search_allowed(
                faiss_module(),
                self._index,
                self._structure,
                q,
                width,
                labels=labels,
                bitmap=bitmap,
                n_labels=self._next_label,
                ef_search=self.ef_search,
            )
        id_of = self._id_of
        for row in range(q.shape[0]):
            out_ids[row] = [id_of[lab] for lab in found[row].tolist()]
            out_scores[row] = scores[row]
        return out_ids, out_scores

    def _raw_search(self, q: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        if self._structure == "hnsw":
            faiss = faiss_module()
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, fetch))
            return self._index.search(q, fetch, params=params)
        return self._index.search(q, fetch)

    def _fill_ivf_gaps(
        self, q: np.ndarray, scores: np.ndarray, labels: np.ndarray, width: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Re-search, probing every list, the rows whose probed lists held fewer than ``width``."""
        short = np.where((labels[:, :width] < 0).any(axis=1))[0]
        if short.size:
            faiss = faiss_module()
            params = faiss.SearchParametersIVF(nprobe=self._index.nlist)
            s2, l2 = self._index.search(q[short], labels.shape[1], params=params)
            scores, labels = scores.copy(), labels.copy()
            scores[short], labels[short] = s2, l2
        return scores, labels

    def _search_row_exhaustive(self, q: np.ndarray, width: int) -> list[tuple[str, float]]:
        scores, labels = self._raw_search(q, self._index.ntotal)
        return [
            (self._id_of[lab], s)
            for lab, s in zip(labels[0].tolist(), scores[0].tolist(), strict=False)
            if lab in self._id_of
        ]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to a folder, atomically: FAISS's own index file plus JSON (no pickle)."""
        target = Path(path)
        _io.atomic_write_dir(target, self.write_to)
        return target

    def write_to(self, folder: Path) -> None:
        """Write into an existing empty ``folder`` (:meth:`save` makes it atomic)."""
        faiss = faiss_module()
        if self._index is not None:
            faiss.write_index(self._index, str(folder / _FAISS_FILE))
        _io.write_json(
            folder / "ids.json",
            {"ids": list(self._label_of), "labels": list(self._label_of.values())},
        )
        _io.write_json(
            folder / _CONFIG,
            {
                "format_version": FORMAT_VERSION,
                "kind": self.kind,
                "structure": self._structure,
                "dim": self.dim,
                "count": len(self),
                "ntotal": 0 if self._index is None else int(self._index.ntotal),
                "next_label": self._next_label,
                "tombstones": self._tombstones,
                "params": {
                    "nlist": self.nlist,
                    "nprobe": self.nprobe,
                    "hnsw_m": self.hnsw_m,
                    "ef_search": self.ef_search,
                    "ef_construction": self.ef_construction,
                },
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DenseIndex:
        """Load an index written by :meth:`save`.

        Raises:
            ValueError: Missing folder, other format version, or corrupted / inconsistent files
                (the file and the mismatch are named).
        """
        faiss = faiss_module()
        folder = Path(path)
        _io.recover_dir(folder)  # heal a save interrupted between its two renames (non-Linux)
        if not folder.is_dir():
            raise ValueError(f"Dense index folder {str(folder)!r} does not exist.")
        config = _io.read_json(folder / _CONFIG, what="dense index config")
        if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{folder / _CONFIG}: unsupported format version; expected {FORMAT_VERSION}. "
                "Rebuild the index."
            )
        try:
            index = cls(config["dim"], config["kind"], **config["params"])
            structure, count, ntotal = config["structure"], config["count"], config["ntotal"]
            index._next_label = int(config["next_label"])
            index._tombstones = int(config["tombstones"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{folder / _CONFIG} is corrupted ({exc}).") from None
        mapping = _io.read_json(folder / "ids.json", what="dense ids file")
        try:
            ids, labels = list(mapping["ids"]), [int(x) for x in mapping["labels"]]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{folder / 'ids.json'} is corrupted.") from None
        if len(ids) != count or len(labels) != count or len(set(ids)) != count:
            raise ValueError(f"{folder / 'ids.json'} holds {len(ids)} ids, config says {count}.")
        index._structure = structure
        if ntotal:
            try:
                index._index = faiss.read_index(str(folder / _FAISS_FILE))
            except RuntimeError as exc:
                msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
                raise ValueError(f"FAISS file {folder / _FAISS_FILE} is corrupted: {msg}") from None
            if index._index.d != index.dim or index._index.ntotal != ntotal:
                raise ValueError(
                    f"FAISS file {folder / _FAISS_FILE} holds {index._index.ntotal} x "
                    f"{index._index.d} vectors, config says {ntotal} x {index.dim}; corrupted."
                )
        index._label_of = dict(zip(ids, labels, strict=False))
        index._id_of = dict(zip(labels, ids, strict=False))
        return index
