"""HybridRetriever: passages + encoder + FAISS dense index + BM25, fused by RRF.

A query is encoded once, searched in the dense index and in BM25 (``candidates`` each), and the
two rankings are fused with :func:`~simcse_rag.index.fusion.reciprocal_rank_fusion`. Every hit
carries its fused score and its rank and score in each source. Passage vectors are cached by
(model fingerprint, text hash), so re-indexing unchanged texts never re-runs the encoder.

Saved layout (``save(dir)``)::

    manifest.json      format version, model name and fingerprint, dim, counts, config
    passages.jsonl     one {"id", "text", "metadata"} per line
    dense/             DenseIndex (FAISS file + JSON)
    bm25/              BM25Index (JSON + .npy)
    embeddings.npy/.json  embedding cache
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simcse_rag import _io
from simcse_rag.index._threads import ReadWriteLock, ThreadLimit
from simcse_rag.index.backend import DenseBackend
from simcse_rag.index.bm25 import BACKENDS, BM25Index, _check_k
from simcse_rag.index.cache import EmbeddingCache
from simcse_rag.index.dense import KINDS, DenseIndex
from simcse_rag.index.fusion import reciprocal_rank_fusion
from simcse_rag.index.tokenizers import TOKENIZERS
from simcse_rag.query_encoder import LazyQueryEncoder, check_query_backend
from simcse_rag.schema import Hit, Passage, SourceHit

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")
MANIFEST = "manifest.json"
#: HybridConfig fields that change how queries are searched, not what the indexes hold.
QUERY_TIME_FIELDS: tuple[str, ...] = ("rrf_k", "weights", "batch_size", "query_backend")


@dataclass(frozen=True)
class HybridConfig:
    """Settings of a :class:`HybridRetriever` (saved in its manifest).

    Attributes:
        dense_index: DenseIndex kind: ``auto``, ``flat``, ``ivf`` or ``hnsw``.
        tokenizer: BM25 tokenizer: ``auto``, ``en`` or ``zh``.
        bm25_backend: ``bm25s`` or ``rank_bm25``.
        rrf_k: RRF constant.
        weights: RRF weight of each source (``dense``, ``bm25``).
        batch_size: Encoding batch size.
        query_backend: How queries are encoded: ``auto`` (ONNX Runtime int8 on CPU when
            onnxruntime is installed, else PyTorch), ``torch``, ``onnx`` (fp32, same vectors as
            PyTorch) or ``onnx-int8``. Passages are always encoded by PyTorch. See
            :mod:`simcse_rag.query_encoder`.
    """

    dense_index: str = "auto"
    tokenizer: str = "auto"
    bm25_backend: str = "bm25s"
    rrf_k: float = 60
    weights: Mapping[str, float] = field(default_factory=lambda: {"dense": 1.0, "bm25": 1.0})
    batch_size: int = 64
    query_backend: str = "auto"

    def __post_init__(self) -> None:
        if self.dense_index not in KINDS:
            raise ValueError(
                f"dense_index {self.dense_index!r} unknown; choose one of: {', '.join(KINDS)}."
            )
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(
                f"tokenizer {self.tokenizer!r} unknown; choose one of: {', '.join(TOKENIZERS)}."
            )
        if self.bm25_backend not in BACKENDS:
            raise ValueError(
                f"bm25_backend {self.bm25_backend!r} unknown; choose one of: {', '.join(BACKENDS)}."
            )
        if (
            isinstance(self.rrf_k, bool)
            or not isinstance(self.rrf_k, (int, float))
            or not self.rrf_k >= 0
        ):
            raise ValueError(f"rrf_k must be a number >= 0, got {self.rrf_k!r}.")
        if not isinstance(self.weights, Mapping) or set(self.weights) - {"dense", "bm25"}:
            raise ValueError(f"weights must map 'dense' / 'bm25' to numbers, got {self.weights!r}.")
        for name, w in self.weights.items():
            if (
                isinstance(w, bool)
                or not isinstance(w, (int, float))
                or not math.isfinite(w)
                or w < 0
            ):
                raise ValueError(f"weights[{name!r}] must be a finite number >= 0, got {w!r}.")
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size <= 0
        ):
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}.")
        check_query_backend(self.query_backend)
        object.__setattr__(self, "weights", {k: float(v) for k, v in self.weights.items()})

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        data = asdict(self)
        data["weights"] = dict(self.weights)
        return data


def _torch_limit() -> ThreadLimit:
    global _TORCH_LIMIT
    if _TORCH_LIMIT is None:
        import torch

        _TORCH_LIMIT = ThreadLimit(torch.get_num_threads, torch.set_num_threads)
    return _TORCH_LIMIT


_TORCH_LIMIT: ThreadLimit | None = None


def _check_passages(passages: Iterable[Passage]) -> list[Passage]:
    if isinstance(passages, (str, Passage)):
        raise TypeError("passages must be an iterable of Passage objects; wrap one in a list.")
    items = list(passages)
    seen: set[str] = set()
    for i, p in enumerate(items):
        if not isinstance(p, Passage):
            raise TypeError(
                f"passages[{i}] is {type(p).__name__}, expected simcse_rag.schema.Passage."
            )
        if p.id in seen:
            raise ValueError(f"Duplicate passage id {p.id!r} (passages[{i}]); ids must be unique.")
        seen.add(p.id)
    return items


class HybridRetriever:
    """Dense + BM25 retrieval over passages, fused by Reciprocal Rank Fusion.

    Args:
        encoder: A :class:`~simcse_rag.encoder.SimCSEEncoder` (or anything with ``encode``,
            ``tokenize``, ``forward``, ``dim``, ``fingerprint`` and ``name_or_path``).
        config: Settings (default :class:`HybridConfig`).

    Example:
        >>> retriever = HybridRetriever.from_passages(passages, SimCSEEncoder.from_pretrained())
        >>> for hit in retriever.search("child with fever", k=3):
        ...     print(hit.rank, hit.id, hit.sources)
    """

    def __init__(
        self,
        encoder: Any,
        config: HybridConfig | None = None,
        *,
        dense_index: DenseBackend | None = None,
    ) -> None:
        if config is not None and not isinstance(config, HybridConfig):
            raise TypeError(f"config must be a HybridConfig, got {type(config).__name__}.")
        if dense_index is not None and not isinstance(dense_index, DenseBackend):
            raise TypeError(
                f"dense_index must implement DenseBackend (e.g. DenseIndex, MilvusDenseIndex), "
                f"got {type(dense_index).__name__}."
            )
        if dense_index is not None and dense_index.dim != encoder.dim:
            raise ValueError(
                f"dense_index dim {dense_index.dim} != model dim {encoder.dim}; "
                "create the index with the model's dimension."
            )
        self.encoder = encoder
        self.config = config or HybridConfig()
        self._fingerprint = encoder.fingerprint()
        self._passages: dict[str, Passage] = {}
        self._dense: DenseBackend = (
            dense_index
            if dense_index is not None
            else DenseIndex(encoder.dim, self.config.dense_index)
        )
        self._bm25 = BM25Index(self.config.tokenizer, self.config.bm25_backend)
        self._cache = EmbeddingCache(self._fingerprint, encoder.dim)
        self._queries = LazyQueryEncoder(encoder, self.config.query_backend)
        # Searches share the indexes; add / delete / save take them exclusively, so a search
        # sees the whole state before or after an update, never a mix.
        self._lock = ReadWriteLock()

    @classmethod
    def from_passages(
        cls,
        passages: Iterable[Passage],
        encoder: Any,
        *,
        config: HybridConfig | None = None,
        dense_index: DenseBackend | None = None,
        show_progress: bool = False,
    ) -> HybridRetriever:
        """Build a retriever over ``passages`` (``dense_index``: another backend, e.g. Milvus).

        Raises:
            ValueError: No passages, or duplicate ids.
        """
        items = _check_passages(passages)
        if not items:
            raise ValueError(
                "Cannot build a retriever from an empty corpus; give at least one passage."
            )
        retriever = cls(encoder, config, dense_index=dense_index)
        retriever.add(items, show_progress=show_progress)
        return retriever

    # ------------------------------------------------------------------ contents
    @property
    def fingerprint(self) -> str:
        """Fingerprint of the encoder the passage vectors were made with."""
        return self._fingerprint

    @property
    def passages(self) -> list[Passage]:
        """All passages, in insertion order."""
        return list(self._passages.values())

    @property
    def cache(self) -> EmbeddingCache:
        """The embedding cache."""
        return self._cache

    @property
    def dense_index(self) -> DenseBackend:
        """The dense index (FAISS :class:`DenseIndex` unless another backend was given)."""
        return self._dense

    @property
    def bm25_index(self) -> BM25Index:
        """The BM25 index."""
        return self._bm25

    def __len__(self) -> int:
        return len(self._passages)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._passages

    def get(self, doc_id: str) -> Passage:
        """Return the passage with id ``doc_id``.

        Raises:
            KeyError: Unknown id.
        """
        try:
            return self._passages[doc_id]
        except KeyError:
            raise KeyError(f"No passage with id {doc_id!r}.") from None

    # ------------------------------------------------------------------ updates
    def embed_passages(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Vectors for ``texts``, encoding only those not in the cache (each distinct text once)."""
        vectors, missing = self._cache.lookup(texts)
        if missing:
            todo = list(dict.fromkeys(texts[i] for i in missing))
            logger.info("encoding %d new texts (%d cached)", len(todo), len(texts) - len(missing))
            encoded = self.encoder.encode(
                todo, batch_size=self.config.batch_size, show_progress=show_progress
            )
            self._cache.put(todo, encoded)
            vectors, _ = self._cache.lookup(texts)
        return vectors

    def add(self, passages: Iterable[Passage], *, show_progress: bool = False) -> None:
        """Add passages; an id already present is replaced (upsert).

        Raises:
            TypeError: An item is not a :class:`Passage`.
            ValueError: Duplicate ids within ``passages``.
        """
        items = _check_passages(passages)
        if not items:
            return
        ids = [p.id for p in items]
        texts = [p.text for p in items]
        vectors = self.embed_passages(texts, show_progress=show_progress)  # outside the lock
        with self._lock.write():
            self._dense.add(ids, vectors)
            self._bm25.add(ids, texts)
            self._bm25._ensure_built()  # rebuild now, not in the next search
            for p in items:
                self._passages[p.id] = p

    def delete(self, ids: Iterable[str]) -> int:
        """Remove passages by id; unknown ids are ignored. Returns how many were removed."""
        if isinstance(ids, str):
            raise TypeError("delete() takes a list of ids; wrap a single id in a list.")
        with self._lock.write():
            gone = [i for i in dict.fromkeys(ids) if i in self._passages]
            if not gone:
                return 0
            self._dense.delete(gone)
            self._bm25.delete(gone)
            self._bm25._ensure_built()
            for i in gone:
                del self._passages[i]
            return len(gone)

    def load_cache(self, path: str | os.PathLike[str]) -> int:
        """Reuse the embedding cache of a saved retriever if it was made by the same model.

        Returns:
            Number of vectors taken (0 when there is none or the model differs).
        """
        folder = Path(path)
        if not (folder / "embeddings.json").is_file():
            return 0
        return self._cache.merge(EmbeddingCache.read(folder))

    # ------------------------------------------------------------------ search
    def with_query_settings(self, **changes: Any) -> HybridRetriever:
        """A retriever over the same passages and indexes with other query-time settings.

        Only :data:`QUERY_TIME_FIELDS` may change (RRF constant and weights, query batch size,
        query backend): the dense structure, tokenizer and BM25 backend are fixed when the
        indexes are built. Nothing is copied or re-encoded; both retrievers share the indexes
        (and their lock), so an update through one is seen by the other.

        Raises:
            ValueError: A field that is not query-time, or a value :class:`HybridConfig`
                refuses.
        """
        fields = {f.name for f in dataclasses.fields(HybridConfig)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise ValueError(
                f"Unknown HybridConfig field(s) {unknown}; choose from {sorted(fields)}."
            )
        fixed = sorted(set(changes) - set(QUERY_TIME_FIELDS))
        if fixed:
            raise ValueError(
                f"{', '.join(fixed)} cannot change on a built retriever (the indexes depend on "
                f"it); rebuild with the new setting. Query-time settings: "
                f"{', '.join(QUERY_TIME_FIELDS)}."
            )
        config = dataclasses.replace(self.config, **changes)
        twin = copy.copy(self)
        twin.config = config
        if config.query_backend != self.config.query_backend:
            twin._queries = LazyQueryEncoder(self.encoder, config.query_backend)
        return twin

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Encode queries into unit vectors ``(m, dim)``.

        With an ONNX query backend (the default on CPU) ONNX Runtime runs them; otherwise
        PyTorch, skipping ``encode``'s length sorting and re-padding (queries are short and
        usually come one at a time): tokenizer -> model -> pooling in one inference-mode pass.
        """
        onnx = self._queries.get()
        if onnx is not None:
            return onnx.encode(list(queries), batch_size=self.config.batch_size)
        import torch

        out = []
        size = self.config.batch_size
        with torch.inference_mode(), _torch_limit()(1 if len(queries) <= 4 else None):
            for start in range(0, len(queries), size):
                features = self.encoder.tokenize(list(queries[start : start + size]))
                features = {k: v.to(self.encoder.device) for k, v in features.items()}
                emb = self.encoder.forward(features).float()
                out.append(torch.nn.functional.normalize(emb, p=2, dim=1).cpu().numpy())
        if not out:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def search(
        self, query: str, *, k: int = 10, mode: str = "hybrid", candidates: int = 100
    ) -> list[Hit]:
        """Retrieve the ``k`` best passages for ``query``.

        Args:
            query: The query text (empty or blank -> ``[]``).
            k: Hits to return (> 0); fewer when the corpus is smaller.
            mode: ``"hybrid"`` (RRF of dense and BM25), ``"dense"`` or ``"bm25"``.
            candidates: Hits taken from each source before fusion (raised to ``k`` if smaller).

        Returns:
            Hits best first with text, metadata, score (fused RRF score in hybrid mode, the
            source score otherwise), 1-based rank and per-source rank and score.

        Raises:
            ValueError: ``k`` or ``candidates`` <= 0, or an unknown mode.
            TypeError: ``query`` is not a string.
        """
        if not isinstance(query, str):
            raise TypeError(
                f"query must be a str, got {type(query).__name__}; use search_batch for lists."
            )
        return self.search_batch([query], k=k, mode=mode, candidates=candidates)[0]

    def search_batch(
        self, queries: Sequence[str], *, k: int = 10, mode: str = "hybrid", candidates: int = 100
    ) -> list[list[Hit]]:
        """Batched :meth:`search`: one list of hits per query (queries are encoded together)."""
        if isinstance(queries, str):
            raise TypeError("search_batch() takes a list of queries; for one query use search().")
        queries = list(queries)
        for i, q in enumerate(queries):
            if not isinstance(q, str):
                raise TypeError(f"queries[{i}] is {type(q).__name__}, expected str.")
        k = _check_k(k)
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates <= 0:
            raise ValueError(f"candidates must be a positive integer, got {candidates!r}.")
        if mode not in MODES:
            raise ValueError(f"Unknown mode {mode!r}; choose one of: {', '.join(MODES)}.")
        depth = max(candidates, k) if mode == "hybrid" else k
        live = [i for i, q in enumerate(queries) if q.strip()]
        if not live:
            return [[] for _ in queries]
        with self._lock.read():
            return self._search_live(queries, live, k, mode, depth)

    def _search_live(
        self, queries: list[str], live: list[int], k: int, mode: str, depth: int
    ) -> list[list[Hit]]:
        results: list[list[Hit]] = [[] for _ in queries]
        if not self._passages:
            return results
        texts = [queries[i] for i in live]
        dense = self._dense_rankings(texts, depth) if mode in ("hybrid", "dense") else None
        sparse = self._bm25_rankings(texts, depth) if mode in ("hybrid", "bm25") else None
        for j, i in enumerate(live):
            if mode == "hybrid":
                hits = reciprocal_rank_fusion(
                    {"dense": dense[j], "bm25": sparse[j]},
                    k=self.config.rrf_k,
                    weights=self.config.weights,
                    limit=k,
                )
            else:
                ranking = dense[j] if mode == "dense" else sparse[j]
                hits = [
                    Hit(id=d, score=s, rank=r, sources={mode: SourceHit(rank=r, score=s)})
                    for r, (d, s) in enumerate(ranking[:k], start=1)
                ]
            results[i] = [self._fill(h) for h in hits]
        return results

    def _dense_rankings(self, texts: list[str], depth: int) -> list[list[tuple[str, float]]]:
        ids, scores = self._dense.search(self.encode_queries(texts), depth)
        return [
            list(zip(r_ids.tolist(), r_scores.tolist(), strict=False))
            for r_ids, r_scores in zip(ids, scores, strict=False)
        ]

    def _bm25_rankings(self, texts: list[str], depth: int) -> list[list[tuple[str, float]]]:
        ids, scores = self._bm25.search(texts, depth)
        # Documents sharing no term with the query score 0: they are not BM25 matches.
        return [
            [(d, s) for d, s in zip(r_ids.tolist(), r_scores.tolist(), strict=False) if s > 0]
            for r_ids, r_scores in zip(ids, scores, strict=False)
        ]

    def _fill(self, hit: Hit) -> Hit:
        p = self._passages[hit.id]
        return Hit(
            id=hit.id,
            score=hit.score,
            rank=hit.rank,
            text=p.text,
            metadata=p.metadata,
            sources=hit.sources,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save everything to ``path`` atomically (an existing index there is replaced only
        once the new one is fully written).

        Returns:
            The folder.
        """
        target = Path(path)
        with self._lock.write():
            self._cache.retain(p.text for p in self._passages.values())
            _io.atomic_write_dir(target, self._write)
        return target

    def _write(self, folder: Path) -> None:
        with open(folder / "passages.jsonl", "w", encoding="utf-8") as fh:
            for p in self._passages.values():
                fh.write(
                    json.dumps(
                        {"id": p.id, "text": p.text, "metadata": p.metadata}, ensure_ascii=False
                    )
                )
                fh.write("\n")
        (folder / "dense").mkdir()
        self._dense._write(folder / "dense")
        (folder / "bm25").mkdir()
        self._bm25._ensure_built()
        self._bm25._write(folder / "bm25")
        self._cache.write(folder)
        _io.write_json(
            folder / MANIFEST,
            {
                "format_version": FORMAT_VERSION,
                "kind": "simcse_rag.HybridRetriever",
                "model": {
                    "name_or_path": str(getattr(self.encoder, "name_or_path", "")),
                    "fingerprint": self._fingerprint,
                    "dim": int(self.encoder.dim),
                },
                "counts": {
                    "passages": len(self._passages),
                    "dense": len(self._dense),
                    "bm25": len(self._bm25),
                    "embeddings": len(self._cache),
                },
                "config": self.config.to_dict(),
            },
        )

    @staticmethod
    def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read and check the manifest of a saved retriever.

        Raises:
            ValueError: Not a retriever folder, or an unsupported format version.
        """
        folder = Path(path)
        if not (folder / MANIFEST).is_file():
            raise ValueError(
                f"{str(folder)!r} is not a simcse-rag index (no {MANIFEST}); build one with "
                "`simcse-rag index build`."
            )
        manifest = _io.read_json(folder / MANIFEST, what="index manifest")
        if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
            found = manifest.get("format_version") if isinstance(manifest, dict) else None
            raise ValueError(
                f"{folder / MANIFEST}: format version {found!r} is not supported (expected "
                f"{FORMAT_VERSION}); rebuild the index."
            )
        return manifest

    @classmethod
    def load(cls, path: str | os.PathLike[str], encoder: Any | None = None) -> HybridRetriever:
        """Load a retriever saved by :meth:`save`.

        Args:
            path: The folder.
            encoder: The encoder to use; ``None`` loads the model named in the manifest.

        Raises:
            ValueError: Missing / corrupted files, inconsistent counts, or an encoder whose
                fingerprint differs from the one the index was built with.
        """
        folder = Path(path)
        _io.recover_dir(folder)  # heal a save interrupted between its two renames (non-Linux)
        manifest = cls.read_manifest(folder)
        try:
            model = manifest["model"]
            counts = manifest["counts"]
            config = HybridConfig(**manifest["config"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{folder / MANIFEST} is corrupted ({exc}).") from None
        if encoder is None:
            from simcse_rag.encoder import SimCSEEncoder

            encoder = SimCSEEncoder.from_pretrained(model.get("name_or_path") or None)
        retriever = cls(encoder, config)
        if retriever._fingerprint != model.get("fingerprint"):
            raise ValueError(
                f"Index {str(folder)!r} was built with model {model.get('name_or_path')!r} "
                f"(fingerprint {model.get('fingerprint')}), but the given model "
                f"{getattr(encoder, 'name_or_path', '?')!r} has fingerprint "
                f"{retriever._fingerprint}; load it with the same model or rebuild the index."
            )
        passages = [
            Passage(obj["id"], obj["text"], obj.get("metadata") or {})
            for _, obj in _read_passages(folder / "passages.jsonl")
        ]
        retriever._passages = {p.id: p for p in passages}
        retriever._dense = _load_dense(folder / "dense")
        retriever._bm25 = BM25Index.load(folder / "bm25")
        retriever._cache = EmbeddingCache.read(folder)
        n = len(retriever._passages)
        if not (n == counts.get("passages") == len(retriever._dense) == len(retriever._bm25)):
            raise ValueError(
                f"Index {str(folder)!r} is inconsistent: manifest says {counts.get('passages')} "
                f"passages, found {n} passages, {len(retriever._dense)} vectors, "
                f"{len(retriever._bm25)} BM25 documents; rebuild it."
            )
        if retriever._dense.dim != encoder.dim:
            raise ValueError(
                f"Index dim {retriever._dense.dim} != model dim {encoder.dim}; rebuild it."
            )
        return retriever


def _load_dense(folder: Path) -> DenseBackend:
    """Load the saved dense backend: Milvus when ``milvus.json`` is there, else FAISS."""
    from simcse_rag.index.milvus import SETTINGS_FILE

    if (folder / SETTINGS_FILE).is_file():
        from simcse_rag.index.milvus import MilvusDenseIndex

        return MilvusDenseIndex.load(folder)
    return DenseIndex.load(folder)


def _read_passages(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise ValueError(f"Index file {path} is missing.")
    for lineno, obj in _io.iter_jsonl(path):
        if not isinstance(obj.get("id"), str) or not isinstance(obj.get("text"), str):
            raise ValueError(f"{path}:{lineno}: passage needs string 'id' and 'text'; corrupted.")
        yield lineno, obj
