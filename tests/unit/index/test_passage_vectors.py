"""Passage backends in an index: cache keys, manifest, load with another backend, fallback."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simcse_rag import onnx_export, onnx_store
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.index.cache import EmbeddingCache, text_key
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever
from simcse_rag.schema import Passage

PASSAGES = [
    Passage("d1", "My child has a fever and a cough that lasts three days."),
    Passage("d2", "Dividend income and the tax rate for 2019."),
    Passage("d3", "儿童发烧怎么办，需要吃药吗"),
    Passage("d4", "short"),
]
MORE = [Passage("d5", "Asthma inhalers for children at night"), Passage("d6", "revenue 2018")]

#: Each test starts with an empty ONNX store (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("onnx_store_dir")


@pytest.fixture()
def encoder(tiny_model_dir: Path) -> SimCSEEncoder:
    return SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")


def _holds(retriever: HybridRetriever, passages: list[Passage], vectors: np.ndarray) -> bool:
    """Whether the dense index holds exactly ``vectors`` for ``passages`` (self-match = 1)."""
    ids, scores = retriever.dense_index.search(vectors, 1)
    return list(ids[:, 0]) == [p.id for p in passages] and bool(
        np.allclose(scores[:, 0], 1.0, atol=1e-5)
    )


def test_cache_keys_carry_the_backend() -> None:
    assert text_key("tax") == hashlib.sha256(b"tax").hexdigest()  # old caches stay valid
    assert len({text_key("tax", b) for b in ("torch", "onnx", "onnx-int8")}) == 3
    cache = EmbeddingCache("fp", 2)
    cache.put(["tax"], np.array([[1.0, 0.0]]), "torch")
    assert cache.lookup(["tax"], "onnx-int8")[1] == [0]  # never served to another backend
    assert cache.lookup(["tax"])[1] == []


def test_int8_index_records_its_backend_and_keeps_it(
    encoder: SimCSEEncoder, tmp_path: Path
) -> None:
    config = HybridConfig(passage_backend="onnx-int8")
    retriever = HybridRetriever.from_passages(PASSAGES, encoder, config=config)
    texts = [p.text for p in PASSAGES]
    int8 = encoder.encode(texts, backend="onnx-int8")
    assert retriever.passage_backend == "onnx-int8"
    assert _holds(retriever, PASSAGES, int8)
    assert not _holds(retriever, PASSAGES, encoder.encode(texts))
    retriever.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["model"]["passage_backend"] == "onnx-int8"
    loaded = HybridRetriever.load(tmp_path / "idx", encoder)
    loaded.add(MORE)
    assert loaded.passage_backend == "onnx-int8"
    assert _holds(loaded, MORE, encoder.encode([p.text for p in MORE], backend="onnx-int8"))


def test_loading_with_another_backend_re_encodes(encoder: SimCSEEncoder, tmp_path: Path) -> None:
    config = HybridConfig(passage_backend="onnx-int8")
    HybridRetriever.from_passages(PASSAGES, encoder, config=config).save(tmp_path / "idx")
    loaded = HybridRetriever.load(tmp_path / "idx", encoder, passage_backend="torch")
    assert loaded.passage_backend == "torch"
    assert loaded.config.passage_backend == "torch"
    assert _holds(loaded, PASSAGES, encoder.encode([p.text for p in PASSAGES]))
    loaded.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["model"]["passage_backend"] == "torch"


def test_switch_passage_backend_re_encodes_only_on_a_change(encoder: SimCSEEncoder) -> None:
    config = HybridConfig(passage_backend="torch")
    retriever = HybridRetriever.from_passages(PASSAGES, encoder, config=config)
    texts = [p.text for p in PASSAGES]
    assert retriever.switch_passage_backend("torch") is False
    assert _holds(retriever, PASSAGES, encoder.encode(texts))
    assert retriever.switch_passage_backend("onnx-int8") is True
    assert retriever.passage_backend == "onnx-int8" == retriever.config.passage_backend
    assert _holds(retriever, PASSAGES, encoder.encode(texts, backend="onnx-int8"))
    assert retriever.manifest()["model"]["passage_backend"] == "onnx-int8"
    assert [h.id for h in retriever.search(texts[1], k=1, mode="dense")] == ["d2"]


def test_old_manifest_without_backend_means_torch(encoder: SimCSEEncoder, tmp_path: Path) -> None:
    HybridRetriever.from_passages(PASSAGES, encoder).save(tmp_path / "idx")
    path = tmp_path / "idx" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["model"]["passage_backend"]
    manifest["config"].pop("passage_backend")
    path.write_text(json.dumps(manifest))
    loaded = HybridRetriever.load(tmp_path / "idx", encoder)
    assert loaded.passage_backend == "torch"
    loaded.add(MORE)
    assert _holds(loaded, MORE, encoder.encode([p.text for p in MORE]))


def _break_export(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("ONNX export failed: unsupported operator")

    monkeypatch.setattr(onnx_export, "export_onnx", broken)


def test_failed_export_builds_a_torch_index(
    encoder: SimCSEEncoder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _break_export(monkeypatch)
    config = HybridConfig(passage_backend="onnx-int8", query_backend="torch")
    with caplog.at_level(logging.WARNING):
        retriever = HybridRetriever.from_passages(PASSAGES, encoder, config=config)
    assert retriever.passage_backend == "torch"
    assert retriever.manifest()["model"]["passage_backend"] == "torch"
    assert _holds(retriever, PASSAGES, encoder.encode([p.text for p in PASSAGES]))
    assert sum("PyTorch instead" in r.getMessage() for r in caplog.records) == 1


def test_int8_index_refuses_torch_vectors_when_export_fails(
    encoder: SimCSEEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = HybridConfig(passage_backend="onnx-int8", query_backend="torch")
    HybridRetriever.from_passages(PASSAGES, encoder, config=config).save(tmp_path / "idx")
    fresh = SimCSEEncoder.from_pretrained(encoder.name_or_path, device="cpu")
    onnx_store.clear_memory()
    monkeypatch.setenv(onnx_store.ENV_VAR, "off")
    _break_export(monkeypatch)
    loaded = HybridRetriever.load(tmp_path / "idx", fresh)
    with pytest.raises(ValueError, match="onnx-int8 passage vectors"):
        loaded.add(MORE)
    assert len(loaded) == len(PASSAGES)
