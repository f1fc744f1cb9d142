"""Adapter retriever folders: index + settings, bare index folders, unsupported formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simcse_rag.index.hybrid import HybridRetriever
from simcse_rag.index.saved import SETTINGS_FILE, load_retriever, save_retriever
from simcse_rag.schema import Passage

PASSAGES = [Passage("a", "fever in children"), Passage("b", "bank loan interest")]


def test_round_trip_and_bare_folder(tiny_encoder: Any, tmp_path: Path) -> None:
    index = HybridRetriever.from_passages(PASSAGES, tiny_encoder)
    save_retriever(index, tmp_path / "r", k=3, mode="bm25", candidates=50)
    loaded, settings = load_retriever(tmp_path / "r", tiny_encoder)
    assert settings == {"k": 3, "mode": "bm25", "candidates": 50}
    assert [p.id for p in loaded.passages] == ["a", "b"]
    index.save(tmp_path / "bare")
    loaded, settings = load_retriever(tmp_path / "bare", tiny_encoder)
    assert settings == {} and len(loaded) == 2


def test_unsupported_settings_keep_folder(tiny_encoder: Any, tmp_path: Path) -> None:
    index = HybridRetriever.from_passages(PASSAGES, tiny_encoder)
    folder = save_retriever(index, tmp_path / "r", k=3, mode="hybrid", candidates=10)
    (folder / SETTINGS_FILE).write_text(json.dumps({"format_version": 99}), encoding="utf-8")
    with pytest.raises(ValueError, match="format_version 1"):
        load_retriever(folder, tiny_encoder)
    assert (folder / "index" / "manifest.json").is_file()
