"""The ONNX query model cached in an index folder: same vectors, no PyTorch, never a bad cache."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simcse_rag import _io, onnx_export
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever
from simcse_rag.onnx_cache import (
    META_FILE,
    MODEL_FILE,
    OPTIMIZED_FILE,
    QUERY_MODEL_DIR,
    QueryModel,
)
from simcse_rag.schema import Passage
from simcse_rag.testing import build_tiny_bert

TEXTS = [
    "a child with a fever and a cough that lasts three days",
    "dividend income and the tax rate",
    "儿童发烧怎么办",
    "insulin dose for diabetes",
]
QUERIES = ["fever in a child", "TAX rate?", "发烧", "dose " * 200]


def _passages() -> list[Passage]:
    return [Passage(f"p{i}", t) for i, t in enumerate(TEXTS)]


def _build(encoder: Any, folder: Path, backend: str = "auto") -> HybridRetriever:
    retriever = HybridRetriever.from_passages(
        _passages(), encoder, config=HybridConfig(query_backend=backend)
    )
    retriever.save(folder)
    return retriever


def _hits(retriever: HybridRetriever) -> list[list[dict[str, Any]]]:
    return [[h.to_dict() for h in hits] for hits in retriever.search_batch(QUERIES, k=4)]


@pytest.fixture
def no_torch_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt to load the PyTorch model."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the PyTorch model was loaded")

    monkeypatch.setattr(SimCSEEncoder, "from_pretrained", refuse)


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8", "auto"])
def test_cached_model_gives_the_fresh_export_s_results_without_pytorch(
    tiny_encoder: Any, tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = _build(tiny_encoder, tmp_path / "idx", backend)
    meta = json.loads((tmp_path / "idx" / QUERY_MODEL_DIR / META_FILE).read_text())
    assert meta["backend"] == ("onnx-int8" if backend == "auto" else backend)
    assert meta["fingerprint"] == tiny_encoder.fingerprint()
    monkeypatch.setattr(SimCSEEncoder, "from_pretrained", _refuse)
    monkeypatch.setattr(onnx_export, "export_onnx", _refuse)
    loaded = HybridRetriever.load(tmp_path / "idx")
    np.testing.assert_array_equal(loaded.encode_queries(QUERIES), fresh.encode_queries(QUERIES))
    assert _hits(loaded) == _hits(fresh)


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the PyTorch model was loaded or exported")


def test_explicit_encoder_reuses_the_cache(
    tiny_encoder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = _build(tiny_encoder, tmp_path / "idx")
    monkeypatch.setattr(onnx_export, "export_onnx", _refuse)
    loaded = HybridRetriever.load(tmp_path / "idx", tiny_encoder)
    assert _hits(loaded) == _hits(fresh)


def test_torch_backend_writes_no_cache(tiny_encoder: Any, tmp_path: Path) -> None:
    _build(tiny_encoder, tmp_path / "idx", "torch")
    assert not (tmp_path / "idx" / QUERY_MODEL_DIR).exists()


def test_updates_and_save_keep_the_cache_without_pytorch_for_deletes(
    tiny_encoder: Any, tmp_path: Path, no_torch_model: None
) -> None:
    _build(tiny_encoder, tmp_path / "idx")
    before = (tmp_path / "idx" / QUERY_MODEL_DIR / MODEL_FILE).read_bytes()
    loaded = HybridRetriever.load(tmp_path / "idx")
    assert loaded.delete(["p1"]) == 1
    loaded.save(tmp_path / "idx")
    assert (tmp_path / "idx" / QUERY_MODEL_DIR / MODEL_FILE).read_bytes() == before
    again = HybridRetriever.load(tmp_path / "idx")
    assert [h.id for h in again.search("tax", k=4, mode="bm25")] == []
    assert len(again) == 3


def test_adding_passages_loads_the_model_lazily(tiny_encoder: Any, tmp_path: Path) -> None:
    _build(tiny_encoder, tmp_path / "idx")
    loaded = HybridRetriever.load(tmp_path / "idx")
    loaded.add([Passage("new", "vaccine for a baby")])
    assert loaded.search("vaccine baby", k=1)[0].id == "new"
    assert loaded.encoder.fingerprint() == tiny_encoder.fingerprint()


def test_changed_model_still_searches_but_refuses_to_add(tmp_path: Path) -> None:
    model = build_tiny_bert(tmp_path / "model", seed=0)
    _build(SimCSEEncoder.from_pretrained(model, device="cpu"), tmp_path / "idx")
    build_tiny_bert(model, seed=1)  # the model folder changes after the build
    loaded = HybridRetriever.load(tmp_path / "idx")
    assert loaded.search("fever child", k=1)[0].id == "p0"
    with pytest.raises(ValueError, match="now has fingerprint .* rebuild it"):
        loaded.add([Passage("new", "vaccine")])


def _damage_model(folder: Path) -> None:
    path = folder / QUERY_MODEL_DIR / MODEL_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _damage_optimized(folder: Path) -> None:
    path = folder / QUERY_MODEL_DIR / OPTIMIZED_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_meta(key: str, value: Any) -> Any:
    def edit(folder: Path) -> None:
        path = folder / QUERY_MODEL_DIR / META_FILE
        meta = json.loads(path.read_text())
        meta[key] = value
        path.write_text(json.dumps(meta))

    return edit


def _remove(folder: Path) -> None:
    shutil.rmtree(folder / QUERY_MODEL_DIR)


def _drop_tokenizer(folder: Path) -> None:
    (folder / QUERY_MODEL_DIR / "tokenizer.json").unlink()


@pytest.mark.parametrize(
    ("damage", "level", "message"),
    [
        (_remove, logging.DEBUG, "no cached query model"),
        (_damage_model, logging.WARNING, "model.onnx does not match its sha256"),
        (_damage_optimized, logging.WARNING, "model.optimized.onnx does not match its sha256"),
        (_drop_tokenizer, logging.WARNING, "is corrupt"),
        (_edit_meta("fingerprint", "0123456789abcdef"), logging.INFO, "made for model"),
        (_edit_meta("onnxruntime", "0.0.1"), logging.INFO, "written by onnxruntime 0.0.1"),
        (_edit_meta("format_version", 99), logging.WARNING, "unsupported format version"),
    ],
    ids=[
        "missing",
        "bad-hash",
        "bad-hash-optimized",
        "unreadable",
        "other-model",
        "other-onnxruntime",
        "format",
    ],
)
def test_bad_cache_is_never_used_and_is_rewritten(
    tiny_encoder: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: Any,
    level: int,
    message: str,
) -> None:
    folder = tmp_path / "idx"
    fresh = _build(tiny_encoder, folder)
    good = (folder / QUERY_MODEL_DIR / MODEL_FILE).read_bytes()
    damage(folder)
    with caplog.at_level(logging.DEBUG, logger="simcse_rag.onnx_cache"):
        assert QueryModel.read(folder, fingerprint=tiny_encoder.fingerprint()) is None
        loaded = HybridRetriever.load(folder)
    assert any(r.levelno == level and message in r.getMessage() for r in caplog.records)
    assert _hits(loaded) == _hits(fresh)  # rebuilt from the PyTorch model
    rewritten = QueryModel.read(folder, fingerprint=tiny_encoder.fingerprint())
    assert rewritten is not None and rewritten.onnx == good
    assert rewritten.optimized is not None


def test_read_only_folder_just_logs(
    tiny_encoder: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "idx"
    fresh = _build(tiny_encoder, folder)
    _remove(folder)

    def read_only(target: Path, writer: Any) -> None:
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(_io, "atomic_write_dir", read_only)
    with caplog.at_level(logging.DEBUG, logger="simcse_rag.onnx_cache"):
        loaded = HybridRetriever.load(folder)
        assert _hits(loaded) == _hits(fresh)
    assert any(
        r.levelno == logging.DEBUG and "Permission denied" in r.getMessage() for r in caplog.records
    )
    assert not (folder / QUERY_MODEL_DIR).exists()


def _rewrite_meta(folder: Path, edit: Any) -> None:
    path = folder / QUERY_MODEL_DIR / META_FILE
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def test_saved_optimised_graph_gives_the_same_vectors(tiny_encoder: Any, tmp_path: Path) -> None:
    fresh = _build(tiny_encoder, tmp_path / "idx")
    cached = QueryModel.read(tmp_path / "idx", fingerprint=tiny_encoder.fingerprint())
    assert cached is not None and cached.optimized is not None
    assert cached.optimized != cached.onnx
    loaded = HybridRetriever.load(tmp_path / "idx")
    np.testing.assert_allclose(
        loaded.encode_queries(QUERIES), fresh.encode_queries(QUERIES), rtol=0, atol=1e-6
    )
    assert [[h.id for h in hits] for hits in loaded.search_batch(QUERIES, k=4)] == [
        [h.id for h in hits] for hits in fresh.search_batch(QUERIES, k=4)
    ]


def test_unloadable_optimised_graph_falls_back_to_the_model(
    tiny_encoder: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A graph whose hash matches but that ONNX Runtime refuses (e.g. written by a build with
    other operators) is never fatal: the exported model is optimised and run instead."""
    folder = tmp_path / "idx"
    fresh = _build(tiny_encoder, folder)
    garbage = b"not an onnx graph"
    (folder / QUERY_MODEL_DIR / OPTIMIZED_FILE).write_bytes(garbage)

    def fix_hash(meta: dict[str, Any]) -> None:
        meta["sha256"][OPTIMIZED_FILE] = hashlib.sha256(garbage).hexdigest()

    _rewrite_meta(folder, fix_hash)
    with caplog.at_level(logging.WARNING, logger="simcse_rag.query_encoder"):
        loaded = HybridRetriever.load(folder)
    assert any("optimised query graph unusable" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(loaded.encode_queries(QUERIES), fresh.encode_queries(QUERIES))


@pytest.mark.parametrize("case", ["written-before-it-existed", "other-level"])
def test_cache_without_a_usable_optimised_graph_runs_the_model_and_save_adds_it(
    tiny_encoder: Any, tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "idx"
    fresh = _build(tiny_encoder, folder)
    if case == "written-before-it-existed":
        (folder / QUERY_MODEL_DIR / OPTIMIZED_FILE).unlink()

        def edit(meta: dict[str, Any]) -> None:
            del meta["sha256"][OPTIMIZED_FILE], meta["optimized"]

    else:

        def edit(meta: dict[str, Any]) -> None:
            meta["optimized"] = "all"  # a level whose graph may be specific to its machine

    _rewrite_meta(folder, edit)
    cached = QueryModel.read(folder, fingerprint=tiny_encoder.fingerprint())
    assert cached is not None and cached.optimized is None
    monkeypatch.setattr(SimCSEEncoder, "from_pretrained", _refuse)
    monkeypatch.setattr(onnx_export, "export_onnx", _refuse)
    loaded = HybridRetriever.load(folder)
    np.testing.assert_array_equal(loaded.encode_queries(QUERIES), fresh.encode_queries(QUERIES))
    loaded.save(folder)
    again = QueryModel.read(folder, fingerprint=tiny_encoder.fingerprint())
    assert again is not None and again.optimized is not None


def test_load_starts_the_query_session_so_the_first_query_does_not(
    tiny_encoder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime

    fresh = _build(tiny_encoder, tmp_path / "idx")
    loaded = HybridRetriever.load(tmp_path / "idx")

    def no_new_session(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an ONNX Runtime session was started by a query")

    monkeypatch.setattr(onnxruntime, "InferenceSession", no_new_session)
    assert _hits(loaded) == _hits(fresh)


def test_searching_a_saved_index_imports_neither_bm25s_nor_torch(
    tiny_encoder: Any, tmp_path: Path
) -> None:
    """bm25s' package import (scipy among it) cost a search-only process's first query a few
    hundred milliseconds; only its stopword lists are needed, and they come without it."""
    _build(tiny_encoder, tmp_path / "idx")
    code = (
        "import sys\n"
        "from simcse_rag.index.hybrid import HybridRetriever\n"
        "index = HybridRetriever.load(sys.argv[1])\n"
        "assert index.search('the fever of a child', k=2)\n"
        "print(sorted(m for m in ('bm25s', 'scipy', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "idx")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.stdout.strip() == "[]"
