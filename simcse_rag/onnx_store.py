"""On-disk store of exported ONNX models, so no process exports the same model twice.

Exporting an encoder to ONNX (and quantizing it) takes seconds and needs PyTorch. The exported
graph has dynamic batch and sequence axes, so one export serves queries and passages alike.
:func:`simcse_rag.onnx_export.export_onnx` keeps each export here, keyed by everything that
shapes the graph::

    <cache dir>/<key>/model.onnx   the graph (int8 when quantized)
    <cache dir>/<key>/meta.json    fingerprint, quantized, opset, onnxruntime version, sha256

The key hashes the model fingerprint (weights, pooling, max length), the input names, the
quantization recipe, the opset and the onnxruntime version, so a fine-tuned model (new weights,
new fingerprint) never gets a stale graph. A file whose sha256 differs from its ``meta.json`` is
dropped and rebuilt, never used.

The cache lives in the user's cache folder (``$SIMCSE_RAG_ONNX_CACHE``, else
``$XDG_CACHE_HOME/simcse-rag/onnx``, else ``~/.cache/simcse-rag/onnx``) rather than in the model
folder, which may be read-only (the bundled model sits in site-packages); ``SIMCSE_RAG_ONNX_CACHE
=off`` turns the disk store off. An index additionally keeps its query model
(:mod:`simcse_rag.onnx_cache`) so that a search process needs no PyTorch at all.

Every fine-tuned model (each ``adapt`` run, the round trip's filter model included) adds
entries, so the store is bounded: after each write the least recently used entries are removed
until the store holds at most ``$SIMCSE_RAG_ONNX_CACHE_MAX_MB`` megabytes (default
:data:`DEFAULT_MAX_MB`; ``0`` keeps everything). The entry just written always stays, and a
read marks its entry as used. A removed entry only costs a new export when it is next needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
from collections import OrderedDict
from pathlib import Path

from simcse_rag import _io

logger = logging.getLogger(__name__)

ENV_VAR = "SIMCSE_RAG_ONNX_CACHE"
MAX_MB_ENV_VAR = "SIMCSE_RAG_ONNX_CACHE_MAX_MB"
#: Far more than one model needs (all-MiniLM-L6-v2: int8 22 MB, fp32 90 MB; a 335M-parameter
#: model's fp32 export about 1.3 GB), so what gets pruned is a long history of fine-tuned models
#: (each ``adapt`` run adds one or two).
DEFAULT_MAX_MB = 2048
MODEL_FILE = "model.onnx"
META_FILE = "meta.json"
FORMAT_VERSION = 1
#: Models kept in memory per process (an fp32 MiniLM is ~90 MB).
MEMORY_SLOTS = 4

_memory: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()


def cache_dir() -> Path | None:
    """The store's folder, or ``None`` when the disk store is turned off."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value.lower() == "off":
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "simcse-rag" / "onnx"


def max_bytes() -> int | None:
    """The store's size limit in bytes (``None``: no limit), from ``$SIMCSE_RAG_ONNX_CACHE_MAX_MB``.

    A value that is not a number of megabytes >= 0 logs a warning and keeps the default: a
    cache setting should not stop a search.
    """
    value = os.environ.get(MAX_MB_ENV_VAR, "").strip()
    megabytes = float(DEFAULT_MAX_MB)
    if value:
        try:
            megabytes = float(value)
            if not megabytes >= 0:  # also NaN
                raise ValueError(value)
        except ValueError:
            logger.warning(
                "%s=%r is not a number of megabytes >= 0; using %d (set 0 to keep every model)",
                MAX_MB_ENV_VAR, value, DEFAULT_MAX_MB,
            )  # fmt: skip
            megabytes = float(DEFAULT_MAX_MB)
    return None if megabytes == 0 else int(megabytes * 2**20)


def model_key(fingerprint: str, *, names: list[str], recipe: str, opset: int) -> str:
    """The store key of an export: a hash of what shapes the graph and the runtime reading it."""
    import onnxruntime

    text = "|".join([fingerprint, ",".join(names), recipe, str(opset), onnxruntime.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def get(key: str) -> bytes | None:
    """The stored model of ``key`` (memory first, then disk), or ``None``.

    A corrupt or incomplete entry on disk is removed (warning) and ``None`` returned, so the
    caller exports again.
    """
    with _lock:
        if key in _memory:
            _memory.move_to_end(key)
            return _memory[key]
    folder = _entry(key)
    if folder is None or not (folder / META_FILE).is_file():
        return None
    try:
        meta = _io.read_json(folder / META_FILE, what="ONNX store entry")
        data = (folder / MODEL_FILE).read_bytes()
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError("unsupported format version")
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise ValueError(f"{MODEL_FILE} does not match its sha256")
    except (OSError, ValueError) as exc:
        logger.warning("stored ONNX model %s is corrupt (%s); exporting it again", folder, exc)
        discard(key)
        return None
    _touch(folder / META_FILE)
    _remember(key, data)
    return data


def put(key: str, data: bytes, *, fingerprint: str, recipe: str) -> None:
    """Keep ``data`` under ``key`` in memory and, when possible, on disk (atomically).

    A folder that cannot be written (read-only home) only skips the disk copy (debug log).
    """
    _remember(key, data)
    folder = _entry(key)
    if folder is None:
        return

    def write(tmp: Path) -> None:
        (tmp / MODEL_FILE).write_bytes(data)
        _io.write_json(
            tmp / META_FILE,
            {
                "format_version": FORMAT_VERSION,
                "fingerprint": fingerprint,
                "recipe": recipe,
                "sha256": hashlib.sha256(data).hexdigest(),
            },
        )

    try:
        _io.atomic_write_dir(folder, write)
    except OSError as exc:
        logger.debug("ONNX model not stored in %s: %s", folder, exc)
        return
    limit = max_bytes()
    if limit is not None:
        prune(folder.parent, limit, keep=key)


def prune(root: Path, limit: int, *, keep: str = "") -> list[str]:
    """Remove the least recently used entries of the store at ``root`` until it holds at most
    ``limit`` bytes; ``keep`` is never removed. Returns the removed keys.

    Only complete entries (with ``meta.json``) count; one another process removes meanwhile is
    skipped. A reader that loses its entry this way exports the model again.
    """
    entries = []
    for folder in _folders(root):
        try:
            used = (folder / META_FILE).stat().st_mtime
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        except OSError:  # incomplete, or removed by another process
            continue
        entries.append((used, size, folder))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, folder in sorted(entries, key=lambda e: e[0]):  # least recently used first
        if total <= limit:
            break
        if folder.name == keep:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        total -= size
        removed.append(folder.name)
    if removed:
        logger.info(
            "ONNX store %s: removed %d least recently used models to stay under %d MB (%s)",
            root, len(removed), limit // 2**20, MAX_MB_ENV_VAR,
        )  # fmt: skip
    return removed


def discard(key: str) -> None:
    """Forget ``key`` in memory and on disk (a model ONNX Runtime could not load)."""
    with _lock:
        _memory.pop(key, None)
    folder = _entry(key)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def clear_memory() -> None:
    """Forget every model held in memory (the disk store stays); what a new process sees."""
    with _lock:
        _memory.clear()


def _folders(root: Path) -> list[Path]:
    try:
        return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []


def _touch(path: Path) -> None:
    """Mark an entry as used (its ``meta.json`` mtime orders :func:`prune`); a read-only store
    just keeps the old time."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _entry(key: str) -> Path | None:
    root = cache_dir()
    return None if root is None else root / key


def _remember(key: str, data: bytes) -> None:
    with _lock:
        _memory[key] = data
        _memory.move_to_end(key)
        while len(_memory) > MEMORY_SLOTS:
            _memory.popitem(last=False)
