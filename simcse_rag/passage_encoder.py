"""Passage encoding through ONNX Runtime: the backend choice and the batched runner.

:meth:`SimCSEEncoder.encode(..., backend=...) <simcse_rag.encoder.SimCSEEncoder.encode>` sends
texts here for ``onnx`` (fp32, the same vectors as PyTorch) and ``onnx-int8`` (int8 weights).
The model is the one export that also serves queries (:func:`simcse_rag.onnx_export.export_onnx`,
stored on disk by :mod:`simcse_rag.onnx_store`).

Throughput: one ONNX Runtime session with a one-thread intra-op pool is shared by
:func:`simcse_rag.threads.thread_count` worker threads (``InferenceSession.run`` is thread-safe
and releases the GIL), each running whole batches. The thread count is fixed when the session
is made, never per batch, and every core is busy on its own batch instead of splitting small
matrix products.

Batch independence: ONNX Runtime's dynamic quantization takes one activation scale per tensor,
so in a batch the most extreme text (and the padding) would set every other text's scale and a
passage's vector would depend on its batch-mates. The int8 model therefore runs one text per
call, without padding; measured against the alternatives in docs/benchmarks.md ("Passage
encoding").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from simcse_rag import onnx_export, onnx_store, threads

logger = logging.getLogger(__name__)

#: ``torch`` (PyTorch eager), ``onnx`` (ONNX Runtime fp32, same vectors), ``onnx-int8``
#: (int8 weights, fastest), ``auto`` (:data:`AUTO_BACKEND` for a CPU model when onnxruntime is
#: installed, else ``torch``).
PASSAGE_BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx", "onnx-int8")
#: What ``auto`` means on CPU with onnxruntime installed; chosen by the measured speed and
#: quality cost (docs/benchmarks.md, "Passage encoding").
AUTO_BACKEND = "onnx-int8"
#: :class:`~simcse_rag.index.config.HybridConfig`'s and the CLI's default passage backend.
DEFAULT_BACKEND = "auto"
#: Texts tokenized and encoded at a time by :func:`iter_encode`: enough for length sorting to
#: remove most padding, small enough that tokens never dominate memory.
CHUNK_SIZE = 4096
#: ``on_tokens(chunk_texts, input_ids)``: sees each chunk's unpadded token ids (e.g. to measure
#: vocabulary coverage without tokenizing again).
TokenHook = Callable[[list[str], list[list[int]]], object]


def check_passage_backend(backend: object) -> str:
    """Return ``backend`` if it names one of :data:`PASSAGE_BACKENDS`.

    Raises:
        ValueError: Unknown name (the message lists the valid ones).
    """
    if backend not in PASSAGE_BACKENDS:
        raise ValueError(
            f"passage backend {backend!r} unknown; choose one of: {', '.join(PASSAGE_BACKENDS)}."
        )
    return str(backend)


def resolve_passage_backend(backend: str, encoder: Any) -> str:
    """Turn ``auto`` into a concrete backend for ``encoder``.

    Raises:
        ValueError: Unknown name, or an ONNX backend for a model not on CPU or without
            onnxruntime installed.
    """
    from simcse_rag.query_encoder import onnxruntime_available

    check_passage_backend(backend)
    on_cpu = getattr(getattr(encoder, "device", None), "type", None) == "cpu"
    exportable = on_cpu and hasattr(encoder, "onnx_slot")
    if backend == "auto":
        return AUTO_BACKEND if exportable and onnxruntime_available() else "torch"
    if backend != "torch":
        if not exportable:
            raise ValueError(
                f"passage backend {backend!r} needs a SimCSEEncoder on CPU; use backend='torch'."
            )
        if not onnxruntime_available():
            raise ValueError(
                f"passage backend {backend!r} needs onnxruntime and onnx: "
                "`pip install onnxruntime onnx`, or use backend='torch'."
            )
    return backend


class OnnxPassageEncoder:
    """Runs an encoder's exported graph over length-sorted batches on every core.

    Args:
        encoder: A :class:`~simcse_rag.encoder.SimCSEEncoder` on CPU.
        quantize: Use the int8 model (then one text per call, see the module docstring).
        fingerprint: ``encoder.fingerprint()`` (the export's store key).
        workers: Worker threads (default :func:`simcse_rag.threads.thread_count`).

    Raises:
        RuntimeError: The model could not be exported or loaded (callers fall back to torch).
    """

    def __init__(
        self, encoder: Any, *, quantize: bool, fingerprint: str, workers: int | None = None
    ) -> None:
        self.encoder = encoder
        self.quantize = quantize
        self.fingerprint = fingerprint
        self.workers = workers or threads.thread_count()
        self.input_names = onnx_export.input_names(encoder)
        #: Texts per call: 1 for int8 (batch independence), else the caller's batch size.
        self.batch_limit = 1 if quantize else 2**31
        model = onnx_export.export_onnx(
            encoder, self.input_names, quantize, fingerprint=fingerprint
        )
        try:
            self._session = _session(model)
        except Exception as exc:  # noqa: BLE001 - a stored model ORT cannot load: export again
            logger.warning("stored ONNX model unusable (%s); exporting it again", exc)
            onnx_store.discard(
                onnx_export.store_key(encoder, self.input_names, quantize, fingerprint)
            )
            model = onnx_export.export_onnx(
                encoder, self.input_names, quantize, fingerprint=fingerprint
            )
            try:
                self._session = _session(model)
            except Exception as again:  # noqa: BLE001 - reported as an export failure
                raise RuntimeError(f"ONNX Runtime cannot load the export: {again}") from again

    def encode_tokenized(
        self,
        encoded: dict[str, list[list[int]]],
        batches: Sequence[np.ndarray],
        out: np.ndarray,
        on_batch: Callable[[int], object] | None = None,
    ) -> None:
        """Fill ``out[rows]`` with unit vectors for each batch of row indices in ``batches``.

        Args:
            encoded: Unpadded tokenizer output (lists of ids per text).
            batches: Row indices per batch (length-sorted by the caller).
            out: ``(n, dim)`` float32 array to write into.
            on_batch: Called with each finished batch's size (progress bars).
        """

        def run(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            feeds = self._feeds(encoded, rows)
            return rows, self._session.run(None, feeds)[0]

        with ThreadPoolExecutor(self.workers, thread_name_prefix="simcse-onnx") as pool:
            for rows, vectors in pool.map(run, batches):
                out[rows] = vectors
                if on_batch is not None:
                    on_batch(len(rows))

    def _feeds(self, encoded: dict[str, list[list[int]]], rows: np.ndarray) -> dict[str, Any]:
        if len(rows) == 1:  # one text: nothing to pad
            return {n: np.asarray([encoded[n][rows[0]]], dtype=np.int64) for n in self.input_names}
        padded = self.encoder.tokenizer.pad(
            {n: [encoded[n][i] for i in rows] for n in self.input_names}, return_tensors="np"
        )
        return {n: np.asarray(padded[n], dtype=np.int64) for n in self.input_names}


def _session(model: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Parallelism comes from the worker threads (one batch each), not from inside an operator.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxSlot:
    """An encoder's ONNX passage runner, rebuilt when its weights change (fingerprint checked).

    An export that fails is remembered for that fingerprint and logged once; the encoder then
    uses PyTorch.
    """

    def __init__(self) -> None:
        self._key: tuple[str, str] | None = None
        self._runner: OnnxPassageEncoder | None = None
        self._failed: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._signature: tuple[Any, ...] | None = None
        self._fingerprint_value = ""

    def _fingerprint(self, encoder: Any) -> str:
        """``encoder.fingerprint()``, re-hashed only when a weight tensor was replaced or
        changed in place (torch bumps a tensor's version counter on every in-place write, the
        optimizer's included), because hashing every weight takes around a second on a busy
        CPU and this runs on every ``encode`` call."""
        tensors = [*encoder.model.parameters(), *encoder.model.buffers()]
        signature = (
            encoder.pooling,
            encoder.max_length,
            *((id(t), t._version) for t in tensors),
        )
        if signature != self._signature:
            self._fingerprint_value = encoder.fingerprint()
            self._signature = signature
        return self._fingerprint_value

    def get(self, encoder: Any, backend: str) -> OnnxPassageEncoder | None:
        """The runner for ``backend`` (``onnx`` / ``onnx-int8``), or ``None`` to use PyTorch."""
        with self._lock:
            key = (backend, self._fingerprint(encoder))
            if key == self._key and self._runner is not None:
                return self._runner
            if key in self._failed:
                return None
            try:
                runner = OnnxPassageEncoder(
                    encoder, quantize=backend == "onnx-int8", fingerprint=key[1]
                )
            except RuntimeError as exc:
                logger.warning("%s; encoding passages with PyTorch instead.", exc)
                self._failed.add(key)
                return None
            self._key, self._runner = key, runner
            return runner


def iter_encode(
    encoder: Any,
    texts: list[str],
    *,
    batch_size: int,
    normalize: bool,
    show_progress: bool,
    backend: str,
    chunk_size: int,
    on_tokens: TokenHook | None = None,
) -> Iterator[np.ndarray]:
    """:meth:`SimCSEEncoder.iter_encode <simcse_rag.encoder.SimCSEEncoder.iter_encode>` for
    checked ``texts``: per chunk, tokenize, sort by length, run the batches on ``backend``;
    ``on_tokens(chunk_texts, input_ids)`` sees each chunk's token ids before it is encoded.

    Arguments are checked and the ONNX model built now, not at the first ``next()``.
    """
    if not isinstance(chunk_size, int) or chunk_size < 0:
        raise ValueError(f"chunk_size must be a non-negative integer, got {chunk_size!r}.")
    resolved = resolve_passage_backend(backend, encoder)
    if resolved != "torch" and not normalize:
        if backend != "auto":
            raise ValueError(
                f"backend {backend!r} returns unit vectors; use backend='torch' for "
                "normalize=False."
            )
        resolved = "torch"
    onnx = encoder.onnx_slot.get(encoder, resolved) if resolved != "torch" and texts else None
    return _chunks(
        encoder,
        texts,
        batch_size,
        normalize,
        show_progress,
        chunk_size or CHUNK_SIZE,
        onnx,
        on_tokens,
    )


def _chunks(
    encoder: Any,
    texts: list[str],
    batch_size: int,
    normalize: bool,
    show_progress: bool,
    chunk_size: int,
    onnx: OnnxPassageEncoder | None,
    on_tokens: TokenHook | None,
) -> Iterator[np.ndarray]:
    from tqdm.auto import tqdm

    step = batch_size if onnx is None else min(batch_size, onnx.batch_limit)
    with tqdm(total=len(texts), disable=not show_progress, desc="Encoding", unit="text") as bar:
        for start in range(0, len(texts), chunk_size):
            chunk = texts[start : start + chunk_size]
            encoded = encoder.tokenize(chunk, padding=False)
            if on_tokens is not None:
                on_tokens(chunk, encoded["input_ids"])
            order = np.argsort([-len(ids) for ids in encoded["input_ids"]], kind="stable")
            batches = [order[i : i + step] for i in range(0, len(chunk), step)]
            out = np.empty((len(chunk), encoder.dim), dtype=np.float32)
            if onnx is not None:
                onnx.encode_tokenized(encoded, batches, out, bar.update)
            else:
                torch_batches(encoder, encoded, batches, out, normalize, bar.update)
            yield out


def torch_batches(
    encoder: Any,
    encoded: dict[str, Any],
    batches: list[np.ndarray],
    out: np.ndarray,
    normalize: bool,
    on_batch: Callable[[int], object],
) -> None:
    """Fill ``out[idx]`` with PyTorch vectors for each batch ``idx`` of ``encoded`` rows
    (eval mode, no gradients; the model's training mode is restored)."""
    import torch

    model = encoder.model
    was_training = model.training
    model.eval()
    keys = [k for k in encoded if k != "length"]
    try:
        with torch.inference_mode():
            for idx in batches:
                batch = encoder.tokenizer.pad(
                    {k: [encoded[k][i] for i in idx] for k in keys}, return_tensors="pt"
                )
                batch = {k: v.to(encoder.device) for k, v in batch.items()}
                emb = encoder.forward(batch).float()
                if normalize:
                    emb = torch.nn.functional.normalize(emb, p=2, dim=1)
                out[idx] = emb.cpu().numpy()
                on_batch(len(idx))
    finally:
        model.train(was_training)
