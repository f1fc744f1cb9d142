"""DenseBackend: the interface every dense (vector) index implements.

Two implementations ship: :class:`~simcse_rag.index.dense.DenseIndex` (FAISS, embedded, the
default) and :class:`~simcse_rag.index.milvus.MilvusDenseIndex` (Milvus through ``pymilvus``:
Milvus Lite on a local ``.db`` path, or a Milvus server / cluster by URI). The protocol is
structural, so ``DenseIndex`` satisfies it without inheriting from it, and third-party indexes
can too.

Contract (shared by both implementations and checked by their tests):

* ids are non-empty strings; ``add`` upserts by id, ``delete`` returns how many ids it removed
  and ignores unknown ones;
* vectors are compared by inner product (callers pass unit vectors, so this is cosine);
* ``search`` takes an ``(m, dim)`` array and returns ``(ids, scores)``, both ``(m, k')`` with
  ``k' = min(k, len(index))``: ids of dtype object (str), scores float32, best first, never a
  missing / ``-1`` id;
* ``save(dir)`` writes what is needed to reopen the index (all of it for FAISS; the connection
  settings for Milvus, which persists its own data), crash-safely; ``load(dir)`` validates it.

A saved dense folder is reopened through the registry below (:func:`load_backend`): the file a
backend's ``write_to`` leaves there names the backend, and its class is imported only then, so
code that saves and loads indexes never imports an optional backend (``pymilvus``) itself.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from simcse_rag import _validate

#: Where each dense backend's class lives, as ``"module:Class"`` (imported only when used).
#: A registered class needs a ``load(folder)`` classmethod that reopens what ``write_to`` wrote.
BACKEND_CLASSES: dict[str, str] = {
    "faiss": "simcse_rag.index.dense:DenseIndex",
    "milvus": "simcse_rag.index.milvus:MilvusDenseIndex",
}
#: The file each backend's ``write_to`` writes into a dense folder -> the backend's name.
MARKER_FILES: dict[str, str] = {"milvus.json": "milvus", "dense.json": "faiss"}
#: The backend of a folder holding none of :data:`MARKER_FILES` (its ``load`` says what is
#: missing).
DEFAULT_BACKEND = "faiss"
#: Dense backends selectable by name (``HybridConfig`` / ``simcse-rag index build --backend``).
BACKENDS: tuple[str, ...] = tuple(BACKEND_CLASSES)


@runtime_checkable
class DenseBackend(Protocol):
    """A string-keyed inner-product vector index (see the module docstring for the contract)."""

    dim: int

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Insert or replace one vector per id."""
        ...

    def delete(self, ids: Iterable[str]) -> int:
        """Remove vectors by id; return how many were present."""
        ...

    def search(
        self, queries: np.ndarray, k: int, *, allowed: Collection[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ids, scores)`` of shape ``(m, min(k, n))``, best first, where ``n`` is the
        number of vectors, or of those whose id is in ``allowed`` when it is given: a metadata
        filter is applied *inside* the search (never by post-filtering a fetched window), so
        ``k`` hits come back whenever ``k`` allowed vectors exist, and no other id ever does."""
        ...

    def __len__(self) -> int:
        """Number of vectors held."""
        ...

    def __contains__(self, doc_id: object) -> bool:
        """Whether ``doc_id`` is indexed."""
        ...

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Persist to a folder (atomically) and return it."""
        ...

    def write_to(self, folder: Path) -> None:
        """Write what :meth:`save` writes into an existing empty folder (no atomicity: the
        caller writes a whole index into a temporary folder and renames it)."""
        ...


def saved_backend(folder: str | os.PathLike[str]) -> str:
    """The name of the backend that wrote the dense folder ``folder``."""
    path = Path(folder)
    for marker, name in MARKER_FILES.items():
        if (path / marker).is_file():
            return name
    return DEFAULT_BACKEND


def backend_class(name: str) -> Any:
    """Import and return the class registered for backend ``name``.

    Raises:
        ValueError: ``name`` is not registered (the message lists those that are).
    """
    _validate.one_of(name, "dense backend", BACKEND_CLASSES)
    module, _, attr = BACKEND_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def load_backend(folder: str | os.PathLike[str]) -> DenseBackend:
    """Reopen the dense index saved in ``folder`` with the backend that wrote it."""
    return backend_class(saved_backend(folder)).load(Path(folder))


def check_backend(index: object, dim: int) -> DenseBackend:
    """``index`` if it is a :class:`DenseBackend` of dimension ``dim`` (an index handed to a
    retriever whose model makes ``dim``-dimensional vectors).

    Raises:
        TypeError: ``index`` does not implement :class:`DenseBackend`.
        ValueError: Its dimension is not ``dim``.
    """
    if not isinstance(index, DenseBackend):
        raise TypeError(
            f"dense_index must implement DenseBackend (e.g. DenseIndex, MilvusDenseIndex), "
            f"got {type(index).__name__}."
        )
    if index.dim != dim:
        raise ValueError(
            f"dense_index dim {index.dim} != model dim {dim}; "
            "create the index with the model's dimension."
        )
    return index
