"""ONNX passage encoding: same vectors as PyTorch (fp32), batch independence (int8), chunks,
backend choice, fallback when the export fails, the on-disk store of exports."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simcse_rag import onnx_export, onnx_store
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.passage_encoder import resolve_passage_backend

#: Each test starts with an empty ONNX store (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("onnx_store_dir")


def _mixed_texts(n: int) -> list[str]:
    words = [
        "fever",
        "cough",
        "tax",
        "dividend",
        "儿童",
        "发烧",
        "revenue",
        "2019",
        "asthma",
        "吃药",
        "rate",
        "income",
    ]
    return [
        " ".join(words[(i * 7 + j) % len(words)] for j in range(1 + (i * 13) % 40))
        for i in range(n)
    ]


@pytest.fixture()
def encoder(tiny_model_dir: Path) -> SimCSEEncoder:
    """A private encoder (tests change its weights or its ONNX slot)."""
    return SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")


def test_onnx_fp32_gives_torch_vectors_in_input_order(encoder: SimCSEEncoder) -> None:
    texts = _mixed_texts(50)
    expected = encoder.encode(texts, batch_size=8)
    got = encoder.encode(texts, batch_size=8, backend="onnx")
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_int8_is_close_to_fp32_and_really_quantized(encoder: SimCSEEncoder) -> None:
    texts = _mixed_texts(20)
    fp32 = encoder.encode(texts)
    int8 = encoder.encode(texts, backend="onnx-int8")
    assert (fp32 * int8).sum(axis=1).min() > 0.95
    assert not np.allclose(int8, fp32, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_passage_vector_does_not_depend_on_its_batch(encoder: SimCSEEncoder, backend: str) -> None:
    """A passage's vector is the same alone, in any batch size and among any batch-mates."""
    texts = _mixed_texts(40)
    alone = np.concatenate([encoder.encode([t], backend=backend) for t in texts])
    for batch_size in (2, 7, 16, 64):
        np.testing.assert_allclose(
            encoder.encode(texts, batch_size=batch_size, backend=backend),
            alone,
            atol=1e-5,
            err_msg=f"batch_size {batch_size}",
        )
    reordered = texts[::-1] + ["padding " * 200]
    np.testing.assert_allclose(
        encoder.encode(reordered, backend=backend)[:-1][::-1], alone, atol=1e-5
    )


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_iter_encode_yields_chunks_that_equal_encode(encoder: SimCSEEncoder, backend: str) -> None:
    texts = _mixed_texts(23)
    chunks = list(encoder.iter_encode(texts, batch_size=4, chunk_size=10, backend=backend))
    assert [len(c) for c in chunks] == [10, 10, 3]
    np.testing.assert_allclose(np.concatenate(chunks), encoder.encode(texts), atol=2e-5)


def test_backend_choice_and_bad_values(encoder: SimCSEEncoder) -> None:
    assert resolve_passage_backend("auto", encoder) in ("onnx", "onnx-int8")
    assert resolve_passage_backend("torch", encoder) == "torch"
    with pytest.raises(ValueError, match="onnx-int4"):
        encoder.encode(["a"], backend="onnx-int4")
    with pytest.raises(ValueError, match="normalize=False"):
        encoder.encode(["a"], backend="onnx", normalize=False)
    with pytest.raises(ValueError, match="chunk_size"):
        encoder.iter_encode(["a"], chunk_size=-1)
    # auto with normalize=False falls back to torch (un-normalised vectors)
    raw = encoder.encode(["a fever"], backend="auto", normalize=False)
    np.testing.assert_allclose(raw, encoder.encode(["a fever"], normalize=False), atol=1e-6)
    assert encoder.encode([], backend="onnx-int8").shape == (0, encoder.dim)


def test_failed_export_falls_back_to_torch_with_one_warning(
    encoder: SimCSEEncoder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("ONNX export of the model failed: unsupported operator")

    monkeypatch.setattr(onnx_export, "export_onnx", broken)
    texts = _mixed_texts(6)
    with caplog.at_level(logging.WARNING):
        first = encoder.encode(texts, backend="onnx-int8")
        second = encoder.encode(texts, backend="onnx-int8")
    warnings = [r for r in caplog.records if "PyTorch instead" in r.getMessage()]
    assert len(warnings) == 1
    np.testing.assert_allclose(first, encoder.encode(texts), atol=1e-6)
    np.testing.assert_array_equal(first, second)


def _count_exports(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    import torch

    calls: list[int] = []
    real = torch.onnx.export

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", counting)
    return calls


def test_export_is_stored_and_reused_by_a_new_process(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, onnx_store_dir: Path
) -> None:
    calls = _count_exports(monkeypatch)
    texts = _mixed_texts(5)
    first = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    expected = first.encode(texts, backend="onnx-int8")
    assert len(calls) == 1 and any(onnx_store_dir.iterdir())
    onnx_store.clear_memory()  # a new process: only the disk store is left
    second = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    np.testing.assert_array_equal(second.encode(texts, backend="onnx-int8"), expected)
    assert len(calls) == 1


def test_changed_weights_get_a_fresh_export(encoder: SimCSEEncoder) -> None:
    """After training (weights changed in place) the ONNX vectors follow the new weights."""
    import torch

    texts = _mixed_texts(8)
    before = encoder.encode(texts, backend="onnx")
    with torch.no_grad():
        for param in encoder.model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    after = encoder.encode(texts, backend="onnx")
    assert not np.allclose(before, after, atol=1e-3)
    np.testing.assert_allclose(after, encoder.encode(texts), atol=2e-5)


def test_weights_are_hashed_again_only_after_they_change(
    encoder: SimCSEEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    hashed: list[str] = []
    real = encoder.fingerprint

    def counting() -> str:
        hashed.append(real())
        return hashed[-1]

    monkeypatch.setattr(encoder, "fingerprint", counting)
    texts = _mixed_texts(3)
    for _ in range(3):
        encoder.encode(texts, backend="onnx")
    assert len(hashed) == 1
    with torch.no_grad():
        next(encoder.model.parameters()).mul_(1.5)
    np.testing.assert_allclose(
        encoder.encode(texts, backend="onnx"), encoder.encode(texts), atol=2e-5
    )
    assert len(hashed) == 2 and hashed[0] != hashed[1]


@pytest.mark.parametrize("damage", ["bytes", "unloadable"])
def test_corrupt_stored_model_is_rebuilt_never_used(
    tiny_model_dir: Path,
    onnx_store_dir: Path,
    damage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts = _mixed_texts(5)
    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    expected = encoder.encode(texts, backend="onnx")
    (entry,) = [p for p in onnx_store_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    model = entry / onnx_store.MODEL_FILE
    if damage == "bytes":  # flipped bytes: the sha256 no longer matches
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(data))
    else:  # a consistent entry that ONNX Runtime cannot load
        onnx_store.put(entry.name, b"not an onnx model", fingerprint="x", recipe="fp32")
    onnx_store.clear_memory()
    fresh = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    with caplog.at_level(logging.WARNING):
        got = fresh.encode(texts, backend="onnx")
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert any("exporting it again" in r.getMessage() for r in caplog.records)
    onnx_store.clear_memory()
    assert onnx_store.get(entry.name) == model.read_bytes()  # rebuilt on disk, sha256 matches
    assert model.read_bytes() != b"not an onnx model"


def test_store_off_and_read_only(
    encoder: SimCSEEncoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(onnx_store.ENV_VAR, "off")
    assert onnx_store.cache_dir() is None
    texts = _mixed_texts(3)
    np.testing.assert_allclose(
        encoder.encode(texts, backend="onnx"), encoder.encode(texts), atol=2e-5
    )
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(onnx_store.ENV_VAR, str(blocker / "store"))
    onnx_store.put("k", b"data", fingerprint="f", recipe="fp32")  # cannot write: skipped
    assert onnx_store.get("k") == b"data"  # still served from memory
