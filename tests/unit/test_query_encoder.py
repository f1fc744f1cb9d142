"""ONNX Runtime query encoder: same vectors as PyTorch, int8 close, backend choice, fallback."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from simcse_rag import onnx_export, query_encoder
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever
from simcse_rag.query_encoder import (
    LazyQueryEncoder,
    OnnxQueryEncoder,
    TorchQueryEncoder,
    resolve_query_backend,
)
from simcse_rag.schema import Passage

TEXTS = [
    "a child with a fever and a cough that lasts three days",
    "tax",
    "儿童发烧怎么办",
    "dividend income and the tax rate for 2019 compared with the rate for 2018",
]


@pytest.mark.parametrize(
    "pooling", ["mean", "cls", "cls_before_pooler", "first_last_avg", "last2avg"]
)
def test_onnx_fp32_equals_torch_for_every_pooling(tiny_model_dir: Any, pooling: str) -> None:
    from simcse_rag.encoder import SimCSEEncoder

    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, pooling=pooling, device="cpu")
    expected = encoder.encode(TEXTS)
    onnx = OnnxQueryEncoder(encoder)
    batched = onnx.encode(TEXTS)  # one padded batch
    single = np.stack([onnx.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, expected, atol=2e-5)
    np.testing.assert_allclose(single, expected, atol=2e-5)
    assert batched.dtype == np.float32


def test_int8_is_close_but_not_identical(tiny_encoder: Any) -> None:
    expected = tiny_encoder.encode(TEXTS)
    got = OnnxQueryEncoder(tiny_encoder, quantize=True).encode(TEXTS)
    cos = (expected * got).sum(axis=1)
    assert cos.min() > 0.95
    assert not np.allclose(got, expected, atol=1e-6)  # really quantized
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_export_restores_training_mode_and_empty_input(tiny_encoder: Any) -> None:
    tiny_encoder.model.train()
    try:
        onnx = OnnxQueryEncoder(tiny_encoder)
        assert tiny_encoder.model.training
    finally:
        tiny_encoder.model.eval()
    assert onnx.encode([]).shape == (0, tiny_encoder.dim)


def test_resolve_backend(tiny_encoder: Any) -> None:
    assert resolve_query_backend("auto", tiny_encoder) == "onnx-int8"
    assert resolve_query_backend("onnx", tiny_encoder) == "onnx"

    class Plain:  # anything with encode/tokenize/forward but no exportable model
        dim = 4

    assert resolve_query_backend("auto", Plain()) == "torch"
    with pytest.raises(ValueError, match="query_backend='torch'"):
        resolve_query_backend("onnx-int8", Plain())
    with pytest.raises(ValueError, match="unknown; choose one of"):
        resolve_query_backend("tensorrt", tiny_encoder)
    with pytest.raises(ValueError, match="query_backend 'fast' unknown"):
        HybridConfig(query_backend="fast")


def test_missing_onnxruntime_is_a_clear_error(tiny_encoder: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(query_encoder, "onnxruntime_available", lambda: False)
    assert resolve_query_backend("auto", tiny_encoder) == "torch"
    with pytest.raises(ValueError, match="pip install onnxruntime onnx"):
        resolve_query_backend("onnx", tiny_encoder)


def test_export_failure_falls_back_to_torch(
    tiny_encoder: Any, monkeypatch: Any, caplog: Any
) -> None:
    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("ONNX export of X failed: unsupported operator")

    monkeypatch.setattr(onnx_export, "export_onnx", broken)
    lazy = LazyQueryEncoder(tiny_encoder, "onnx")
    with caplog.at_level(logging.WARNING, logger="simcse_rag.query_encoder"):
        assert lazy.get() is None
    assert lazy.backend == "torch"
    assert "unsupported operator; encoding queries with PyTorch" in caplog.text


def test_retriever_backends_agree(tiny_encoder: Any) -> None:
    passages = [Passage(f"p{i}", t) for i, t in enumerate(TEXTS)]
    runs = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        r = HybridRetriever.from_passages(
            passages, tiny_encoder, config=HybridConfig(query_backend=backend)
        )
        vectors = r.encode_queries(TEXTS)
        runs[backend] = vectors
        hits = r.search(TEXTS[0], k=2, mode="dense")
        assert hits[0].id == "p0"
    np.testing.assert_allclose(runs["onnx"], runs["torch"], atol=2e-5)
    assert ((runs["onnx-int8"] * runs["torch"]).sum(axis=1)).min() > 0.95


def test_quiet_drops_only_onnxruntime_root_hints(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def root_record(pathname: str) -> logging.LogRecord:
        return logging.LogRecord("root", logging.WARNING, pathname, 1, pathname, None, None)

    hint = root_record("/site-packages/onnxruntime/quantization/onnx_quantizer.py")
    other = root_record("/app/main.py")
    with caplog.at_level(logging.WARNING), onnx_export.quiet():
        logging.getLogger("someapp").warning("the app's own warning")
        logging.getLogger().handle(hint)
        logging.getLogger().handle(other)
    assert [r.getMessage() for r in caplog.records] == ["the app's own warning", "/app/main.py"]
    assert logging.getLogger().filters == []
    # The quantizer calls logging.warning(), which runs basicConfig() on a root without handlers.
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    with onnx_export.quiet():
        logging.warning("a hint")
    assert logging.getLogger().handlers == []


def _mixed_queries(n: int) -> list[str]:
    """``n`` queries from one word to a long paragraph, English and Chinese, in mixed order."""
    words = [
        "fever",
        "cough",
        "dividend",
        "tax",
        "rate",
        "insulin",
        "loan",
        "child",
        "儿童",
        "发烧",
        "利率",
        "the",
        "of",
        "and",
    ]
    out = []
    for i in range(n):
        length = 1 + (i * 7919) % 40  # 1..40 words, scattered
        out.append(" ".join(words[(i + j) % len(words)] for j in range(length)))
    return out


@pytest.mark.parametrize("backend", ["torch", "onnx", "onnx-int8"])
def test_query_vector_does_not_depend_on_its_batch(tiny_encoder: Any, backend: str) -> None:
    """A query's vector is the same alone and inside any batch (sizes 1..64, mixed lengths)."""
    retriever = HybridRetriever(tiny_encoder, HybridConfig(query_backend=backend))
    queries = _mixed_queries(64)
    alone = np.concatenate([retriever.encode_queries([q]) for q in queries])
    for size in range(1, 65):
        batch = queries[:size]
        np.testing.assert_allclose(
            retriever.encode_queries(batch), alone[:size], atol=1e-5, err_msg=f"batch of {size}"
        )


def test_torch_query_encoder_runs_small_batches_on_one_thread(
    tiny_encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    threads: list[int] = []
    forward = tiny_encoder.forward

    def spy(features: Any) -> Any:
        threads.append(torch.get_num_threads())
        return forward(features)

    monkeypatch.setattr(tiny_encoder, "forward", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        encoder = TorchQueryEncoder(tiny_encoder)
        one = encoder.encode(TEXTS[:1])
        many = encoder.encode(TEXTS * 2, batch_size=3)  # more than SMALL_BATCH: 3 batches
        assert threads == [1, 2, 2, 2]
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(one, tiny_encoder.encode(TEXTS[:1]), atol=2e-5)
    np.testing.assert_allclose(many, tiny_encoder.encode(TEXTS * 2), atol=2e-5)
    assert many.dtype == np.float32
    assert encoder.encode([]).shape == (0, tiny_encoder.dim)


def test_lazy_encoder_encodes_through_torch_after_a_failed_export(
    tiny_encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("ONNX export of X failed: unsupported operator")

    monkeypatch.setattr(onnx_export, "export_onnx", broken)
    lazy = LazyQueryEncoder(tiny_encoder, "onnx")
    np.testing.assert_allclose(lazy.encode(TEXTS), tiny_encoder.encode(TEXTS), atol=2e-5)
    assert lazy.backend == "torch"


def test_checking_for_onnx_does_not_import_it() -> None:
    """Importing onnx takes about a second; an index build whose models are in the ONNX store
    never needs it, so the availability check only looks the package up."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from simcse_rag.query_encoder import onnxruntime_available\n"
        "assert onnxruntime_available()\n"
        "assert 'onnx' not in sys.modules, 'onnx imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_no_onnx_package_means_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a)
    )
    assert query_encoder.onnxruntime_available() is False
