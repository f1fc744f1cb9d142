"""ONNX export of an encoder (model + pooling + L2 norm), int8 if asked.

The graph wraps :meth:`SimCSEEncoder.forward` and L2 normalisation, so every pooling mode
exports as it runs in PyTorch. It is traced on a padded batch with dynamic batch and sequence
axes, so attention masks stay live in the graph, padded batches give the same vectors as single
texts, and one export serves queries and passages. Each export is kept in
:mod:`simcse_rag.onnx_store` (keyed by the model fingerprint), so no process exports twice.
Running it is :class:`~simcse_rag.query_encoder.OnnxQueryEncoder`'s and
:class:`~simcse_rag.passage_encoder.OnnxPassageEncoder`'s job.

:func:`optimize_graph` applies ONNX Runtime's graph optimisations ahead of time, so a process
that loads the saved result skips them (they are most of a session's start-up time).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: ONNX opset of the exported graph.
OPSET = 17
#: How the int8 model is made (part of the store key: changing it invalidates stored models).
INT8_RECIPE = "int8-dynamic-per-channel-v1"
#: The graph optimisation level :func:`optimize_graph` saves at. "extended" fuses attention,
#: GELU and layer norm; the "all" level adds layout changes that ONNX Runtime marks as specific
#: to the machine that made them, so a saved graph of that level could break on another CPU.
SAVED_OPTIMIZATION = "extended"


def session_options(*, threads: int = 1, optimize: bool = True) -> Any:
    """ONNX Runtime session options for query encoding.

    Args:
        threads: Intra-op threads.
        optimize: Run every graph optimisation (``False``: none, for a graph saved by
            :func:`optimize_graph`).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning threads steal the CPU from the rest of the process on small machines.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimize
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    return options


def optimize_graph(model: bytes) -> bytes:
    """``model`` with ONNX Runtime's graph optimisations (level :data:`SAVED_OPTIMIZATION`)
    applied, as ONNX bytes to run with ``session_options(optimize=False)``.

    The result holds ONNX Runtime's own fused operators, so it is valid only for the
    onnxruntime version that wrote it (the cache records and checks that version).
    """
    import onnxruntime as ort

    options = session_options()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    with tempfile.TemporaryDirectory(prefix="simcse-rag-ort-") as tmp:
        path = Path(tmp) / "optimized.onnx"
        options.optimized_model_filepath = str(path)
        ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return path.read_bytes()


def input_names(encoder: Any) -> list[str]:
    """The tokenizer outputs the exported graph takes, in order.

    Raises:
        RuntimeError: The tokenizer gives no ``input_ids`` / ``attention_mask``.
    """
    probe = encoder.tokenize(["a"])
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in probe]
    if "input_ids" not in names or "attention_mask" not in names:
        raise RuntimeError("the tokenizer gives no input_ids / attention_mask; cannot export.")
    return names


def store_key(encoder: Any, names: list[str], quantize: bool, fingerprint: str) -> str:
    """The :mod:`simcse_rag.onnx_store` key of ``encoder``'s export."""
    from simcse_rag import onnx_store

    return onnx_store.model_key(fingerprint, names=names, recipe=_recipe(quantize), opset=OPSET)


def _recipe(quantize: bool) -> str:
    return INT8_RECIPE if quantize else "fp32"


def export_onnx(
    encoder: Any, names: list[str], quantize: bool, *, fingerprint: str | None = None
) -> bytes:
    """``encoder`` as an ONNX model (bytes), int8-quantized if asked: the stored export when
    there is one for this fingerprint, else a fresh export (then stored).

    Args:
        encoder: A :class:`~simcse_rag.encoder.SimCSEEncoder` (anything with ``model``,
            ``tokenize`` and ``forward``; without ``fingerprint()`` nothing is stored).
        names: Graph inputs (:func:`input_names`).
        quantize: int8 weights (dynamic, per channel).
        fingerprint: ``encoder.fingerprint()`` when the caller has it already.

    Raises:
        RuntimeError: The exporter failed (the message says why; callers fall back to torch).
    """
    from simcse_rag import onnx_store

    if fingerprint is None and callable(getattr(encoder, "fingerprint", None)):
        fingerprint = encoder.fingerprint()
    if not fingerprint:
        return _export(encoder, names, quantize)
    key = store_key(encoder, names, quantize, fingerprint)
    data = onnx_store.get(key)
    if data is None:
        data = _export(encoder, names, quantize)
        onnx_store.put(key, data, fingerprint=fingerprint, recipe=_recipe(quantize))
    return data


def _export(encoder: Any, names: list[str], quantize: bool) -> bytes:
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = encoder.model  # registered so .eval() reaches it

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            emb = encoder.forward(dict(zip(names, inputs, strict=True)))
            return torch.nn.functional.normalize(emb.float(), p=2, dim=1)

    # Two texts of different lengths: the trace keeps the padding mask (a batch without padding
    # lets transformers drop the mask, and the graph would then ignore padding).
    sample = encoder.tokenize(["an example query for tracing the graph", "short"])
    args = tuple(sample[n] for n in names)
    wrapper = Pooled()
    was_training = encoder.model.training
    wrapper.eval()
    with tempfile.TemporaryDirectory(prefix="simcse-rag-onnx-") as tmp:
        path = Path(tmp) / "query.onnx"
        try:
            with quiet(), torch.inference_mode(False), torch.no_grad():
                torch.onnx.export(
                    wrapper,
                    args,
                    str(path),
                    input_names=names,
                    output_names=["embedding"],
                    dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names}
                    | {"embedding": {0: "batch"}},
                    opset_version=OPSET,
                    dynamo=False,
                )
        except Exception as exc:  # noqa: BLE001 - any exporter failure means "use torch"
            raise RuntimeError(f"ONNX export of {encoder!r} failed: {exc}") from exc
        finally:
            encoder.model.train(was_training)
        if quantize:
            try:
                from onnxruntime.quantization import QuantType, quantize_dynamic
            except ImportError as exc:  # onnx installed but broken
                raise RuntimeError(
                    f"int8 quantization needs onnx ({exc}); pip install onnx"
                ) from exc

            qpath = Path(tmp) / "query.int8.onnx"
            with quiet():
                quantize_dynamic(path, qpath, weight_type=QuantType.QInt8, per_channel=True)
            path = qpath
        return path.read_bytes()


class _OnnxRuntimeHints(logging.Filter):
    """Drops the hints onnxruntime's quantizer logs straight on the root logger.

    A filter on the root logger sees only records logged *on* it (``logging.warning(...)``), not
    those propagated from named loggers, so the application's own warnings still come through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        parts = Path(record.pathname).parts
        return record.levelno >= logging.ERROR or "onnxruntime" not in parts


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporter's tracer warnings and the quantizer's pre-processing hint.

    Leaves the root logger's level alone (lowering it would hide every library's warnings for
    the duration), and holds a ``NullHandler`` on a root without handlers so that the
    quantizer's module-level ``logging.warning`` calls do not run ``basicConfig`` in the
    caller's process.
    """
    root = logging.getLogger()
    hints = _OnnxRuntimeHints()
    placeholder = None if root.handlers else logging.NullHandler()
    root.addFilter(hints)
    if placeholder is not None:
        root.addHandler(placeholder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from simcse_rag.model_source import quiet_transformers

            with quiet_transformers():
                yield
    finally:
        root.removeFilter(hints)
        if placeholder is not None:
            root.removeHandler(placeholder)
