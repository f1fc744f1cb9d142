"""Saving and loading a :class:`~simcse_rag.index.hybrid.HybridRetriever` folder.

Saved layout::

    manifest.json      format version, model name, fingerprint, dim and passage backend,
                       counts, config
    passages.jsonl     one {"id", "text", "metadata"} per line
    dense/             the dense backend's files (FAISS file + JSON, or Milvus settings)
    bm25/              BM25Index (JSON + .npy)
    embeddings.npy/.json  embedding cache
    query_model/       the exported ONNX query model (:mod:`simcse_rag.onnx_cache`), if any

The whole folder is written to a temporary folder and renamed into place, so a crash never
leaves a half-written index. The dense folder is reopened by the backend that wrote it
(:func:`simcse_rag.index.backend.load_backend`); this module names no backend.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcse_rag import _io
from simcse_rag.index.backend import DenseBackend, load_backend
from simcse_rag.index.bm25 import BM25Index
from simcse_rag.index.cache import EmbeddingCache
from simcse_rag.index.config import HybridConfig
from simcse_rag.index.deferred import DeferredEncoder
from simcse_rag.onnx_cache import QUERY_MODEL_DIR, QueryModel
from simcse_rag.schema import Passage

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PASSAGES_FILE = "passages.jsonl"
DENSE_DIR = "dense"
BM25_DIR = "bm25"
#: The embedding cache's index file (:meth:`EmbeddingCache.write` writes it beside its matrix).
EMBEDDINGS_FILE = "embeddings.json"


@dataclass
class IndexContents:
    """What a retriever holds besides its encoder and config.

    Attributes:
        passages: Passages by id, in insertion order.
        dense: The dense index.
        bm25: The BM25 index.
        cache: The embedding cache.
        passage_backend: The backend that made the passage vectors (``torch`` before any was
            made).
    """

    passages: dict[str, Passage]
    dense: DenseBackend
    bm25: BM25Index
    cache: EmbeddingCache
    passage_backend: str = "torch"


def build_manifest(
    contents: IndexContents,
    *,
    encoder: Any,
    fingerprint: str,
    config: HybridConfig,
) -> dict[str, Any]:
    """The ``manifest.json`` of an index: format, model (with the backend that made the passage
    vectors), counts, config."""
    return {
        "format_version": FORMAT_VERSION,
        "kind": "simcse_rag.HybridRetriever",
        "model": {
            "name_or_path": str(getattr(encoder, "name_or_path", "")),
            "fingerprint": fingerprint,
            "dim": int(encoder.dim),
            "passage_backend": contents.passage_backend,
        },
        "counts": {
            "passages": len(contents.passages),
            "dense": len(contents.dense),
            "bm25": len(contents.bm25),
            "embeddings": len(contents.cache),
        },
        "config": config.to_dict(),
    }


def write_index(
    path: str | os.PathLike[str],
    contents: IndexContents,
    query_model: QueryModel | None,
    *,
    encoder: Any,
    fingerprint: str,
    config: HybridConfig,
) -> Path:
    """Write an index to ``path`` atomically (an existing one is replaced only once the new
    one is fully written). The embedding cache first drops every vector the index no longer
    holds; the manifest (:func:`build_manifest`) goes last.

    Returns:
        The folder.
    """
    target = Path(path)
    contents.cache.retain((p.text for p in contents.passages.values()), contents.passage_backend)
    manifest = build_manifest(contents, encoder=encoder, fingerprint=fingerprint, config=config)

    def write(folder: Path) -> None:
        with open(folder / PASSAGES_FILE, "w", encoding="utf-8") as fh:
            for p in contents.passages.values():
                record = {"id": p.id, "text": p.text, "metadata": p.metadata}
                fh.write(json.dumps(record, ensure_ascii=False))
                fh.write("\n")
        (folder / DENSE_DIR).mkdir()
        contents.dense.write_to(folder / DENSE_DIR)
        (folder / BM25_DIR).mkdir()
        contents.bm25.write_to(folder / BM25_DIR)
        contents.cache.write(folder)
        if query_model is not None:
            query_model.write(folder / QUERY_MODEL_DIR)
        _io.write_json(folder / MANIFEST, manifest)

    _io.atomic_write_dir(target, write)
    return target


def read_cache(path: str | os.PathLike[str]) -> EmbeddingCache | None:
    """The embedding cache of the index in ``path``, or ``None`` when it has none."""
    folder = Path(path)
    return EmbeddingCache.read(folder) if (folder / EMBEDDINGS_FILE).is_file() else None


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


@dataclass(frozen=True)
class SavedIndex:
    """A saved retriever folder whose manifest has been read and checked.

    Attributes:
        folder: The folder.
        model: The manifest's ``model`` entry (name, fingerprint, dim).
        counts: The manifest's ``counts`` entry.
        config: The retriever's settings.
        query_model: The cached ONNX query model, when current and of the configured backend.
        passage_backend: See the property.
    """

    folder: Path
    model: Mapping[str, Any]
    counts: Mapping[str, Any]
    config: HybridConfig
    query_model: QueryModel | None

    @property
    def passage_backend(self) -> str:
        """The backend that made the saved passage vectors (``torch`` for an index saved
        before backends existed)."""
        return str(self.model.get("passage_backend") or "torch")

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> SavedIndex:
        """Read the manifest of the index in ``path`` (healing an interrupted save first).

        Raises:
            ValueError: Not an index folder, another format version, or a corrupted manifest.
        """
        folder = Path(path)
        _io.recover_dir(folder)  # heal a save interrupted between its two renames (non-Linux)
        manifest = read_manifest(folder)
        try:
            model = manifest["model"]
            counts = manifest["counts"]
            config = HybridConfig.from_dict(manifest["config"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{folder / MANIFEST} is corrupted ({exc}).") from None
        return cls(folder, model, counts, config, _cached_query_model(folder, model, config))

    def encoder(self, encoder: Any | None) -> Any:
        """``encoder``, or when ``None`` the model the manifest names: deferred (not loaded)
        when the cached query model can serve searches, else loaded now."""
        if encoder is not None:
            return encoder
        name = self.model.get("name_or_path") or ""
        if self.query_model is not None:
            dim = int(self.query_model.settings["dim"])
            return DeferredEncoder(str(name), self.query_model.fingerprint, dim, self.query_model)
        from simcse_rag.encoder import SimCSEEncoder

        return SimCSEEncoder.from_pretrained(name or None)

    def check_fingerprint(self, fingerprint: str, encoder: Any) -> None:
        """Raise ``ValueError`` unless ``encoder`` (of ``fingerprint``) built this index."""
        if fingerprint != self.model.get("fingerprint"):
            built, given = self.model.get("fingerprint"), getattr(encoder, "name_or_path", "?")
            raise ValueError(
                f"Index {str(self.folder)!r} was built with model "
                f"{self.model.get('name_or_path')!r} (fingerprint {built}), but the given model "
                f"{given!r} has fingerprint {fingerprint}; load it with the same model or "
                "rebuild the index."
            )

    def read_for(self, encoder: Any, fingerprint: str) -> IndexContents:
        """:meth:`check_fingerprint`, then :meth:`read_contents` for ``encoder``'s dimension.

        Raises:
            ValueError: Another model built the index, or any :meth:`read_contents` error.
        """
        self.check_fingerprint(fingerprint, encoder)
        return self.read_contents(encoder.dim)

    def read_contents(self, dim: int) -> IndexContents:
        """Read passages, indexes and cache, and check they agree with each other, with the
        manifest and with the model dimension ``dim``.

        Raises:
            ValueError: Missing / corrupted files or inconsistent counts or dimensions.
        """
        folder = self.folder
        passages = {
            obj["id"]: Passage(obj["id"], obj["text"], obj.get("metadata") or {})
            for _, obj in _read_passages(folder / PASSAGES_FILE)
        }
        dense = load_backend(folder / DENSE_DIR)
        bm25 = BM25Index.load(folder / BM25_DIR)
        cache = EmbeddingCache.read(folder)
        n = len(passages)
        if not (n == self.counts.get("passages") == len(dense) == len(bm25)):
            raise ValueError(
                f"Index {str(folder)!r} is inconsistent: manifest says "
                f"{self.counts.get('passages')} passages, found {n} passages, {len(dense)} "
                f"vectors, {len(bm25)} BM25 documents; rebuild it."
            )
        if dense.dim != dim:
            raise ValueError(f"Index dim {dense.dim} != model dim {dim}; rebuild it.")
        return IndexContents(passages, dense, bm25, cache, self.passage_backend)


def _cached_query_model(
    folder: Path, model: Mapping[str, Any], config: HybridConfig
) -> QueryModel | None:
    """The index's cached query model when it is current and fits ``config.query_backend``."""
    if config.query_backend == "torch" or not isinstance(model.get("fingerprint"), str):
        return None
    cached = QueryModel.read(folder, fingerprint=model["fingerprint"])
    if cached is None:
        return None
    # ``auto`` resolves to int8 on CPU; an explicit onnx / onnx-int8 must match the export.
    wanted = "onnx-int8" if config.query_backend == "auto" else config.query_backend
    return cached if cached.backend == wanted else None


def _read_passages(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise ValueError(f"Index file {path} is missing.")
    for lineno, obj in _io.iter_jsonl(path):
        if not isinstance(obj.get("id"), str) or not isinstance(obj.get("text"), str):
            raise ValueError(f"{path}:{lineno}: passage needs string 'id' and 'text'; corrupted.")
        yield lineno, obj
