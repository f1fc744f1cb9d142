"""The exported ONNX query model, saved inside an index folder so a new process skips the export.

Exporting the encoder to ONNX (and quantizing it) takes seconds and needs PyTorch; a search
process that only encodes queries needs neither. An index saved with an ONNX query backend
therefore keeps, in ``query_model/``::

    model.onnx           the exported graph (int8 for ``onnx-int8``)
    model.optimized.onnx the same graph after ONNX Runtime's graph optimisations (fused
                         attention, GELU, layer norm), which a session would otherwise redo
                         on every start
    tokenizer.json ...   the model's tokenizer files (``tokenizer.save_pretrained``)
    query_model.json     fingerprint, backend, onnxruntime version, opset, input names,
                         max_length, dim, padding / truncation settings, sha256 of every file

A cached model is used only when its fingerprint equals the index's, it was written by the
running onnxruntime version, and every file hashes to what ``query_model.json`` says; anything
else (missing, stale, corrupt) makes :meth:`QueryModel.read` return ``None`` and the caller
exports again. The optimised graph is ONNX Runtime's own format of the moment (its fused
operators), so it is covered by the same onnxruntime-version check; a cache written before it
existed is used without it (the graph is then optimised when the session starts). Queries
then run through ONNX Runtime and the Rust ``tokenizers`` library only: no torch, no
transformers.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simcse_rag import _io, onnx_export

logger = logging.getLogger(__name__)

#: Sub-folder of an index folder holding the cached query model.
QUERY_MODEL_DIR = "query_model"
META_FILE = "query_model.json"
MODEL_FILE = "model.onnx"
OPTIMIZED_FILE = "model.optimized.onnx"
TOKENIZER_FILE = "tokenizer.json"
FORMAT_VERSION = 1
#: Texts on which the fast tokenizer must reproduce the encoder's own tokenizer exactly
#: (mixed case, punctuation, Chinese, an over-long text for truncation).
_PROBES = (
    "an example query for tracing the graph",
    "Short?",
    "儿童发烧怎么办，需要吃药吗？",
    "Dividend income and the TAX rate for 2019 compared with 2018 " * 60,
)


def onnxruntime_version() -> str:
    """The running onnxruntime's version."""
    import onnxruntime

    return str(onnxruntime.__version__)


class FastQueryTokenizer:
    """The encoder's tokenizer rebuilt from ``tokenizer.json`` with the Rust ``tokenizers``
    library, padding and truncating as :meth:`SimCSEEncoder.tokenize` does.

    Args:
        tokenizer_json: Contents of ``tokenizer.json``.
        max_length: Truncation length in tokens.
        dim: Embedding dimension (for empty results).
        padding: ``pad_id``, ``pad_token``, ``pad_type_id`` and ``side``.
        truncation_side: ``right`` or ``left``.
    """

    def __init__(
        self,
        tokenizer_json: str,
        *,
        max_length: int,
        dim: int,
        padding: dict[str, Any],
        truncation_side: str = "right",
    ) -> None:
        from tokenizers import Tokenizer

        self.dim = dim
        self.max_length = max_length
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.enable_truncation(max_length, direction=truncation_side)
        self._tokenizer.enable_padding(
            direction=padding["side"],
            pad_id=int(padding["pad_id"]),
            pad_type_id=int(padding["pad_type_id"]),
            pad_token=str(padding["pad_token"]),
        )

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask``, ``token_type_ids`` as ``(n, tokens)`` int64."""
        encodings = self._tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }


@dataclass(frozen=True)
class QueryModel:
    """An exported query model with everything needed to run it without PyTorch.

    Attributes:
        fingerprint: Fingerprint of the encoder it was exported from.
        backend: ``onnx`` or ``onnx-int8``.
        onnx: The ONNX model bytes.
        files: Tokenizer files (name -> bytes), ``tokenizer.json`` among them.
        settings: ``input_names``, ``max_length``, ``dim``, ``padding``, ``truncation_side``,
            ``opset`` and ``onnxruntime`` (the version that wrote it).
        optimized: ``onnx`` after :func:`~simcse_rag.onnx_export.optimize_graph` (``None``:
            not made yet).
    """

    fingerprint: str
    backend: str
    onnx: bytes = field(repr=False)
    files: dict[str, bytes] = field(repr=False)
    settings: dict[str, Any]
    optimized: bytes | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_export(
        cls,
        encoder: Any,
        onnx_model: bytes,
        *,
        backend: str,
        fingerprint: str,
        input_names: Sequence[str],
        opset: int,
    ) -> QueryModel | None:
        """Pack an export of ``encoder`` (``onnx_model``, fed ``input_names``) with its tokenizer.

        Returns:
            The model, or ``None`` (logged) when the encoder's tokenizer cannot be rebuilt
            without transformers: not a fast tokenizer, or one whose output differs.
        """
        tokenizer = encoder.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            logger.info("the query model is not cached: %r is not a fast tokenizer", tokenizer)
            return None
        with tempfile.TemporaryDirectory(prefix="simcse-rag-tok-") as tmp:
            tokenizer.save_pretrained(tmp)
            files = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
        if TOKENIZER_FILE not in files:
            logger.info("the query model is not cached: the tokenizer wrote no %s", TOKENIZER_FILE)
            return None
        settings = {
            "input_names": list(input_names),
            "max_length": int(encoder.max_length),
            "dim": int(encoder.dim),
            "padding": {
                "pad_id": int(tokenizer.pad_token_id),
                "pad_token": str(tokenizer.pad_token),
                "pad_type_id": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
                "side": str(getattr(tokenizer, "padding_side", "right")),
            },
            "truncation_side": str(getattr(tokenizer, "truncation_side", "right")),
            "opset": opset,
            "onnxruntime": onnxruntime_version(),
        }
        model = cls(fingerprint, backend, onnx_model, files, settings)
        if not model.reproduces(encoder):
            logger.info("the query model is not cached: its tokenizer differs from the encoder's")
            return None
        return model.with_optimized()

    def with_optimized(self) -> QueryModel:
        """This model with :attr:`optimized` made (itself when it already has it)."""
        if self.optimized is not None:
            return self
        return dataclasses.replace(self, optimized=onnx_export.optimize_graph(self.onnx))

    def tokenizer(self) -> FastQueryTokenizer:
        """The tokenizer that feeds this model (one instance, shared by its callers: building
        it parses ``tokenizer.json``)."""
        return self._tokenizer

    @functools.cached_property
    def _tokenizer(self) -> FastQueryTokenizer:
        return FastQueryTokenizer(
            self.files[TOKENIZER_FILE].decode("utf-8"),
            max_length=int(self.settings["max_length"]),
            dim=int(self.settings["dim"]),
            padding=self.settings["padding"],
            truncation_side=self.settings["truncation_side"],
        )

    def reproduces(self, encoder: Any) -> bool:
        """Whether :meth:`tokenizer` gives exactly ``encoder.tokenize``'s ids and masks."""
        ours = self.tokenizer().tokenize(_PROBES)
        theirs = encoder.tokenize(list(_PROBES))
        return all(
            np.array_equal(ours[name], np.asarray(theirs[name]))
            for name in self.settings["input_names"]
        )

    # ------------------------------------------------------------------ disk
    def write(self, folder: Path) -> None:
        """Write the model into ``folder`` (created if missing)."""
        folder.mkdir(exist_ok=True)
        hashes = {}
        blobs = {MODEL_FILE: self.onnx, **self.files}
        if self.optimized is not None:
            blobs[OPTIMIZED_FILE] = self.optimized
        for name, data in blobs.items():
            (folder / name).write_bytes(data)
            hashes[name] = hashlib.sha256(data).hexdigest()
        optimization = (
            {} if self.optimized is None else {"optimized": onnx_export.SAVED_OPTIMIZATION}
        )
        _io.write_json(
            folder / META_FILE,
            {
                "format_version": FORMAT_VERSION,
                "fingerprint": self.fingerprint,
                "backend": self.backend,
                **self.settings,
                **optimization,
                "sha256": hashes,
            },
        )

    def store(self, index_folder: str | os.PathLike[str]) -> bool:
        """Replace ``index_folder/query_model`` with this model atomically.

        Returns:
            Whether it was written (a read-only folder is skipped, logged at debug level).
        """
        target = Path(index_folder) / QUERY_MODEL_DIR
        try:
            _io.atomic_write_dir(target, self.write)
        except OSError as exc:
            logger.debug("query model not cached in %s: %s", target, exc)
            return False
        return True

    @classmethod
    def read(cls, index_folder: str | os.PathLike[str], *, fingerprint: str) -> QueryModel | None:
        """Read the cached model of an index, or ``None`` when it must not be used.

        Missing -> ``None`` (debug log); written for another model or onnxruntime version ->
        ``None`` (info); unreadable or a file whose sha256 differs -> ``None`` (warning).
        """
        folder = Path(index_folder) / QUERY_MODEL_DIR
        if not (folder / META_FILE).is_file():
            logger.debug("no cached query model in %s", folder)
            return None
        try:
            meta = _io.read_json(folder / META_FILE, what="query model settings")
            stale = _staleness(meta, fingerprint)
            if stale:
                logger.info("cached query model in %s not used: %s", folder, stale)
                return None
            blobs = {name: (folder / name).read_bytes() for name in meta["sha256"]}
            for name, data in blobs.items():
                if hashlib.sha256(data).hexdigest() != meta["sha256"][name]:
                    raise ValueError(f"{name} does not match its sha256")
            settings = {k: meta[k] for k in _SETTINGS}
            onnx = blobs.pop(MODEL_FILE)
            optimized = blobs.pop(OPTIMIZED_FILE, None)
            blobs[TOKENIZER_FILE]  # noqa: B018 - a KeyError here means the cache is incomplete
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("cached query model in %s is corrupt (%s); rebuilding it", folder, exc)
            return None
        if optimized is not None and meta.get("optimized") != onnx_export.SAVED_OPTIMIZATION:
            logger.info("optimised query graph in %s not used: made at another level", folder)
            optimized = None
        return cls(fingerprint, meta["backend"], onnx, blobs, settings, optimized)


_SETTINGS = (
    "input_names",
    "max_length",
    "dim",
    "padding",
    "truncation_side",
    "opset",
    "onnxruntime",
)


def _staleness(meta: Any, fingerprint: str) -> str:
    """Why ``meta`` describes a model that must not be used ("" when it is current)."""
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError("unsupported format version")
    if meta.get("fingerprint") != fingerprint:
        return f"made for model {meta.get('fingerprint')!r}, the index holds {fingerprint!r}"
    if meta.get("onnxruntime") != onnxruntime_version():
        return f"written by onnxruntime {meta.get('onnxruntime')}, running {onnxruntime_version()}"
    if meta.get("backend") not in ("onnx", "onnx-int8"):
        raise ValueError(f"unknown backend {meta.get('backend')!r}")
    return ""
