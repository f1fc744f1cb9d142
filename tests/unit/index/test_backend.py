"""The dense-backend registry: a saved dense folder names its backend, loaded lazily."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from simcse_rag.index.backend import backend_class, load_backend, saved_backend
from simcse_rag.index.dense import DenseIndex


def test_a_saved_faiss_folder_reopens_as_a_dense_index(tmp_path: Path) -> None:
    index = DenseIndex(4, "flat")
    index.add(["a", "b"], np.eye(4, dtype=np.float32)[:2])
    folder = index.save(tmp_path / "dense")
    assert saved_backend(folder) == "faiss"
    loaded = load_backend(folder)
    assert isinstance(loaded, DenseIndex)
    ids, _ = loaded.search(np.eye(4, dtype=np.float32)[1:2], 1)
    assert ids.tolist() == [["b"]]


def test_the_marker_file_names_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "milvus.json").write_text(json.dumps({"format_version": 1}))
    assert saved_backend(tmp_path) == "milvus"
    assert (
        saved_backend(tmp_path / "nothing-here") == "faiss"
    )  # DenseIndex.load says what is missing
    # The class is imported only when a folder of that backend is loaded.
    monkeypatch.setitem(sys.modules, "simcse_rag.index.milvus", None)
    with pytest.raises(ImportError):
        backend_class("milvus")
    assert backend_class("faiss") is DenseIndex


def test_unknown_backend_is_named() -> None:
    with pytest.raises(ValueError, match="dense backend 'qdrant' unknown; choose one of: faiss"):
        backend_class("qdrant")
