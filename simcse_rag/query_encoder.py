"""Query encoding, in one place: PyTorch eager, or the encoder exported to ONNX Runtime.

A query is one short text, so PyTorch eager spends most of its time in per-operator overhead
and in fp32 matrix products too small to thread. ONNX Runtime runs the same graph with fused
attention / GELU / layer-norm kernels: faster with *identical* vectors (fp32), and faster still
with int8 weights (dynamic quantization, per channel) at a small cost in cosine to fp32.
Passages keep being encoded by PyTorch in fp32; only the query side changes. Measurements:
docs/benchmarks.md, "Query encoding".

We use ONNX Runtime (and its quantizer) rather than ``torch.ao.quantization.quantize_dynamic``:
the latter is deprecated, was slower here, and moved vectors further.

The export itself (graph, quantization) is :mod:`simcse_rag.onnx_export`; saving it with an
index is :mod:`simcse_rag.onnx_cache`.

:class:`LazyQueryEncoder` picks the backend, builds its encoder on first use and falls back to
:class:`TorchQueryEncoder` when the export fails.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simcse_rag import _validate, onnx_export
from simcse_rag.index.deferred import DeferredEncoder
from simcse_rag.onnx_export import OPSET
from simcse_rag.threads import ThreadLimit

if TYPE_CHECKING:
    from simcse_rag.onnx_cache import QueryModel

logger = logging.getLogger(__name__)

#: ``torch`` (PyTorch eager), ``onnx`` (ONNX Runtime fp32, same vectors), ``onnx-int8``
#: (int8 weights, fastest), ``auto`` (``onnx-int8`` on CPU when onnxruntime is installed,
#: else ``torch``).
QUERY_BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx", "onnx-int8")


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` can be imported and ``onnx`` (needed to export and quantize) is
    installed. ``onnx`` is found, not imported: its import is slow (docs/benchmarks.md,
    "index build time"), and a process whose models are already in the ONNX store never
    needs it."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return importlib.util.find_spec("onnx") is not None


def check_query_backend(backend: object) -> str:
    """Return ``backend`` if it names one of :data:`QUERY_BACKENDS`.

    Raises:
        ValueError: Unknown name (the message lists the valid ones).
    """
    return _validate.one_of(backend, "query_backend", QUERY_BACKENDS)


def resolve_query_backend(backend: str, encoder: Any) -> str:
    """Turn ``auto`` into a concrete backend for ``encoder``.

    ONNX is used only for a :class:`~simcse_rag.encoder.SimCSEEncoder` on CPU (on a GPU PyTorch
    is already fast) and only when onnxruntime is installed.

    Raises:
        ValueError: Unknown backend name, or an ONNX backend asked for an encoder that has no
            exportable model or without onnxruntime installed.
    """
    check_query_backend(backend)
    exportable = _is_exportable(encoder)
    if backend == "auto":
        return "onnx-int8" if exportable and onnxruntime_available() else "torch"
    if backend != "torch":
        if not exportable:
            raise ValueError(
                f"query_backend {backend!r} needs a SimCSEEncoder on CPU; "
                "use query_backend='torch'."
            )
        if not onnxruntime_available():
            raise ValueError(
                f"query_backend {backend!r} needs onnxruntime and onnx: "
                "`pip install onnxruntime onnx`, or use query_backend='torch'."
            )
    return backend


def _is_exportable(encoder: Any) -> bool:
    device = getattr(encoder, "device", None)
    return (
        hasattr(encoder, "model")
        and hasattr(encoder, "tokenizer")
        and hasattr(encoder, "forward")
        and getattr(device, "type", None) == "cpu"
    )


class OnnxQueryEncoder:
    """An encoder's forward + pooling + L2 norm, run by ONNX Runtime.

    Args:
        encoder: A :class:`~simcse_rag.encoder.SimCSEEncoder` on CPU (its tokenizer is reused),
            or, with ``model``, anything with ``tokenize(texts)`` and ``dim`` (e.g. a
            :class:`~simcse_rag.onnx_cache.FastQueryTokenizer`).
        quantize: Quantize the weights to int8 (dynamic, per channel); with ``model``: whether
            ``model`` is quantized.
        threads: ONNX Runtime intra-op threads. One query is too small to split, and concurrent
            ``encode`` calls from several threads run in parallel anyway.
        model: An already exported model (bytes); ``None`` exports ``encoder``.
        input_names: The model's inputs (default: those ``encoder.tokenize`` returns).
        optimized: ``model`` as :func:`~simcse_rag.onnx_export.optimize_graph` saved it: run
            without optimising it again (a faster start); if ONNX Runtime cannot load it,
            ``model`` is optimised and run instead.

    Attributes:
        model: The ONNX model bytes (what :mod:`simcse_rag.onnx_cache` saves).
        input_names: Tokenizer outputs fed to the model, in order.

    Raises:
        RuntimeError: The model could not be exported (the message says why).
    """

    def __init__(
        self,
        encoder: Any,
        *,
        quantize: bool = False,
        threads: int = 1,
        model: bytes | None = None,
        input_names: Sequence[str] | None = None,
        optimized: bytes | None = None,
    ) -> None:
        self.encoder = encoder
        self.quantize = quantize
        # Dynamic quantization takes one activation scale per *tensor*: in a batch, the longest
        # or most extreme text (and the padding) would set the scale for every other text, so a
        # query's vector would change with its neighbours. One text per call keeps each vector
        # a function of its own text; queries are short, so batching saves little here.
        self.batch_limit = 1 if quantize else 2**31
        self.input_names = list(input_names) if input_names else onnx_export.input_names(encoder)
        if model is None:
            model = onnx_export.export_onnx(encoder, self.input_names, quantize)
        self.model = model
        self._session = _session(model, optimized, threads)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Unit vectors ``(len(texts), dim)`` float32 for ``texts``.

        A text's vector never depends on the other texts passed with it: the int8 model runs
        one text per call (``batch_size`` is ignored there), see :attr:`batch_limit`.
        """
        batch_size = min(batch_size, self.batch_limit)
        out = []
        for start in range(0, len(texts), batch_size):
            enc = self.encoder.tokenize(texts[start : start + batch_size])
            feeds = {name: np.asarray(enc[name], dtype=np.int64) for name in self.input_names}
            out.append(self._session.run(None, feeds)[0])
        if not out:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)


def _session(model: bytes, optimized: bytes | None, threads: int) -> Any:
    """An ONNX Runtime session over ``optimized`` as saved, else over ``model`` optimised now."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if optimized is not None:
        try:
            return ort.InferenceSession(
                optimized, onnx_export.session_options(threads=threads, optimize=False), providers
            )
        except Exception as exc:  # noqa: BLE001 - any load failure means "optimise again"
            logger.warning("saved optimised query graph unusable (%s); optimising again.", exc)
    return ort.InferenceSession(model, onnx_export.session_options(threads=threads), providers)


class TorchQueryEncoder:
    """Queries through PyTorch eager: tokenizer -> model -> pooling -> L2 norm, one pass.

    Unlike :meth:`SimCSEEncoder.encode` it skips sorting by length and re-padding: queries are
    short and usually come one at a time.

    Args:
        encoder: A :class:`~simcse_rag.encoder.SimCSEEncoder` (or anything with ``tokenize``,
            ``forward``, ``device`` and ``dim``).
    """

    #: Batches up to this size run on one torch thread (see :func:`torch_thread_limit`).
    SMALL_BATCH = 4

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Unit vectors ``(len(texts), dim)`` float32 for ``texts``."""
        import torch

        out = []
        # One short query is too small to split across threads: on a busy CPU the extra OpenMP
        # workers made it many times slower (docs/benchmarks.md, "Threads and CPU contention").
        small = 1 if len(texts) <= self.SMALL_BATCH else None
        with torch.inference_mode(), torch_thread_limit()(small):
            for start in range(0, len(texts), batch_size):
                features = self.encoder.tokenize(list(texts[start : start + batch_size]))
                features = {k: v.to(self.encoder.device) for k, v in features.items()}
                emb = self.encoder.forward(features).float()
                out.append(torch.nn.functional.normalize(emb, p=2, dim=1).cpu().numpy())
        if not out:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)


_TORCH_LIMIT: ThreadLimit | None = None
_TORCH_LIMIT_LOCK = threading.Lock()


def torch_thread_limit() -> ThreadLimit:
    """The process-wide scoped cap on PyTorch's thread count (made on first use, so importing
    this module does not import torch)."""
    global _TORCH_LIMIT
    if _TORCH_LIMIT is None:
        with _TORCH_LIMIT_LOCK:  # two limits would each restore the other's lowered count
            if _TORCH_LIMIT is None:
                import torch

                _TORCH_LIMIT = ThreadLimit(torch.get_num_threads, torch.set_num_threads)
    return _TORCH_LIMIT


class LazyQueryEncoder:
    """Builds the query encoder for a backend on first use (thread-safe), then reuses it.

    If the ONNX export fails, a warning is logged once and PyTorch is used instead, so a model
    the exporter cannot handle still serves queries.

    Args:
        encoder: The retriever's encoder; ``None`` when it is not loaded yet (then ``cached``
            and ``load_encoder`` are required).
        backend: One of :data:`QUERY_BACKENDS` (``auto`` is resolved here).
        cached: A saved export to run instead of exporting (its backend wins; the caller checks
            it suits ``backend``). No PyTorch is needed to run it.
        load_encoder: Returns the encoder when it is needed (a cached model ONNX Runtime cannot
            load, or a torch fallback); default: ``encoder``.
        on_export: Called with the :class:`QueryModel` of a fresh export (to cache it on disk);
            also settable later as the :attr:`on_export` attribute.
        fingerprint: The encoder's fingerprint (recorded in the :class:`QueryModel`).
    """

    def __init__(
        self,
        encoder: Any | None,
        backend: str,
        *,
        cached: QueryModel | None = None,
        load_encoder: Callable[[], Any] | None = None,
        on_export: Callable[[QueryModel], object] | None = None,
        fingerprint: str = "",
    ) -> None:
        self._load_encoder = load_encoder or (lambda: encoder)
        self._cached = cached
        self.on_export = on_export
        self._fingerprint = fingerprint
        self.backend = (
            cached.backend if cached is not None else resolve_query_backend(backend, encoder)
        )
        self._onnx: OnnxQueryEncoder | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_encoder(cls, encoder: Any, backend: str, *, fingerprint: str) -> LazyQueryEncoder:
        """The query encoder of a retriever's ``encoder``: a
        :class:`~simcse_rag.index.deferred.DeferredEncoder` (a saved index's model, not loaded
        yet) runs the index's cached query model and loads the model only when needed."""
        if isinstance(encoder, DeferredEncoder):
            return cls(
                None,
                backend,
                cached=encoder.query_model,
                load_encoder=encoder.load,
                fingerprint=fingerprint,
            )
        return cls(encoder, backend, fingerprint=fingerprint)

    def use_cached(self, cached: QueryModel) -> bool:
        """Run ``cached`` instead of exporting, if it is of this encoder's backend and nothing
        was built yet. Returns whether it will be used."""
        with self._lock:
            if self._onnx is None and cached.backend == self.backend:
                self._cached = cached
                return True
        return False

    def query_model(self) -> QueryModel | None:
        """The model to save with the index (built, exporting if needed), or ``None`` for the
        torch backend or a tokenizer that cannot run without transformers."""
        onnx = self.get()
        if onnx is None:
            return None
        with self._lock:
            if self._cached is None:
                self._cached = self._pack(onnx)
            elif self._cached.optimized is None:  # read from a cache written before it existed
                self._cached = self._cached.with_optimized()
            return self._cached

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Unit vectors ``(len(texts), dim)`` float32 for ``texts``, through whichever backend
        is in use (ONNX Runtime, or PyTorch after a failed export or for ``torch``)."""
        onnx = self.get()
        if onnx is not None:
            return onnx.encode(list(texts), batch_size=batch_size)
        return TorchQueryEncoder(self._load_encoder()).encode(texts, batch_size=batch_size)

    def use_saved(self, cached: QueryModel | None, index_folder: Path) -> bool:
        """Run ``cached`` (an index's saved query model) when it suits this encoder; otherwise
        write the next export into ``index_folder`` so the next process can skip it.

        Returns:
            Whether ``cached`` will be used (queries then need neither PyTorch nor an export).
        """
        if cached is not None and self.use_cached(cached):
            return True
        # Missing, stale or corrupt: the next export is written back for the next process.
        self.on_export = lambda query_model: query_model.store(index_folder)
        return False

    def get(self) -> OnnxQueryEncoder | None:
        """The ONNX encoder, or ``None`` when queries should go through PyTorch."""
        if self.backend == "torch":
            return None
        if self._onnx is None:
            with self._lock:
                if self._onnx is None and self.backend != "torch":
                    self._onnx = self._build()
        return self._onnx

    def _build(self) -> OnnxQueryEncoder | None:
        quantize = self.backend == "onnx-int8"
        if self._cached is not None:
            try:
                return OnnxQueryEncoder(
                    self._cached.tokenizer(),
                    quantize=quantize,
                    model=self._cached.onnx,
                    input_names=self._cached.settings["input_names"],
                    optimized=self._cached.optimized,
                )
            except Exception as exc:  # noqa: BLE001 - any load failure means "export again"
                logger.warning("cached query model unusable (%s); exporting it again.", exc)
                self._cached = None
        encoder = self._load_encoder()
        try:
            onnx = OnnxQueryEncoder(encoder, quantize=quantize)
        except RuntimeError as exc:
            logger.warning("%s; encoding queries with PyTorch instead.", exc)
            self.backend = "torch"
            return None
        if self.on_export is not None:
            self._cached = self._pack(onnx)
            if self._cached is not None:
                self.on_export(self._cached)
        return onnx

    def _pack(self, onnx: OnnxQueryEncoder) -> QueryModel | None:
        from simcse_rag.onnx_cache import QueryModel

        return QueryModel.from_export(
            onnx.encoder,
            onnx.model,
            backend=self.backend,
            fingerprint=self._fingerprint,
            input_names=onnx.input_names,
            opset=OPSET,
        )
