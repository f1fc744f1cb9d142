"""EmbeddingCache: passage vectors keyed by (model fingerprint, passage backend, text hash).

Re-indexing a text the same model has already embedded reuses the stored vector instead of
running the encoder again. The passage backend (``torch``, ``onnx``, ``onnx-int8``; see
:mod:`simcse_rag.passage_encoder`) is part of each entry's key, so an int8 vector is never
served for an fp32 request or the other way round; ``torch`` keys are the plain text hash, so
caches written before backends existed stay valid (they hold PyTorch vectors).

The cache is saved with the index as ``embeddings.npy`` (float32 matrix) plus
``embeddings.json`` (format version, fingerprint, one key per row): no pickle.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from simcse_rag import _io

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_MATRIX = "embeddings.npy"
_KEYS = "embeddings.json"
#: Rows per block when writing the matrix.
_WRITE_ROWS = 1024


def text_key(text: str, backend: str = "torch") -> str:
    """Return the cache key of a text encoded by ``backend``: the hex sha256 of its UTF-8
    bytes, prefixed by the backend name unless it is ``torch``."""
    data = text.encode("utf-8")
    if backend != "torch":
        data = backend.encode("utf-8") + b"\x00" + data
    return hashlib.sha256(data).hexdigest()


class EmbeddingCache:
    """In-memory map from text hash to vector, valid for one model fingerprint.

    Args:
        fingerprint: The encoder's :meth:`~simcse_rag.encoder.SimCSEEncoder.fingerprint`.
        dim: Vector dimension.
    """

    def __init__(self, fingerprint: str, dim: int) -> None:
        self.fingerprint = fingerprint
        self.dim = dim
        self._vectors: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._vectors)

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and text_key(text) in self._vectors

    def lookup(self, texts: Sequence[str], backend: str = "torch") -> tuple[np.ndarray, list[int]]:
        """Return ``(vectors, missing)``: rows for texts cached for ``backend`` (zeros
        elsewhere) and the positions of the texts that still need encoding."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing: list[int] = []
        for i, text in enumerate(texts):
            vec = self._vectors.get(text_key(text, backend))
            if vec is None:
                missing.append(i)
            else:
                out[i] = vec
        return out, missing

    def missing(self, texts: Sequence[str], backend: str = "torch") -> list[int]:
        """Positions of the texts with no ``backend`` vector cached (no matrix is built)."""
        return [i for i, text in enumerate(texts) if text_key(text, backend) not in self._vectors]

    def put(self, texts: Sequence[str], vectors: np.ndarray, backend: str = "torch") -> None:
        """Store one vector per text, made by ``backend``."""
        for text, vec in zip(texts, np.asarray(vectors, dtype=np.float32), strict=False):
            self._vectors[text_key(text, backend)] = vec

    def retain(self, texts: Iterable[str], backend: str = "torch") -> None:
        """Drop every entry that is not a ``backend`` vector of one of ``texts``."""
        keep = {text_key(t, backend) for t in texts}
        self._vectors = {k: v for k, v in self._vectors.items() if k in keep}

    def merge(self, other: EmbeddingCache) -> int:
        """Take ``other``'s entries if it was made by the same model; return how many."""
        if other.fingerprint != self.fingerprint or other.dim != self.dim:
            logger.info("embedding cache of another model (%s) ignored", other.fingerprint)
            return 0
        self._vectors.update(other._vectors)
        return len(other)

    def write(self, folder: Path) -> None:
        """Write ``embeddings.npy`` and ``embeddings.json`` into ``folder``; the matrix is
        written a block of rows at a time, so saving never holds a second copy of it."""
        keys = list(self._vectors)
        header = {"descr": "<f4", "fortran_order": False, "shape": (len(keys), self.dim)}
        with open(folder / _MATRIX, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            for start in range(0, len(keys), _WRITE_ROWS):
                rows = [self._vectors[k] for k in keys[start : start + _WRITE_ROWS]]
                np.stack(rows).astype("<f4", copy=False).tofile(fh)
        _io.write_json(
            folder / _KEYS,
            {
                "format_version": FORMAT_VERSION,
                "fingerprint": self.fingerprint,
                "dim": self.dim,
                "keys": keys,
            },
        )

    @classmethod
    def read(cls, folder: Path) -> EmbeddingCache:
        """Read a cache written by :meth:`write`.

        Raises:
            ValueError: Missing or corrupted files, or a row count that does not match.
        """
        meta = _io.read_json(folder / _KEYS, what="embedding cache index")
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder / _KEYS}: unsupported embedding cache format.")
        try:
            matrix = np.load(folder / _MATRIX, allow_pickle=False)
        except FileNotFoundError:
            raise ValueError(f"Embedding cache {folder / _MATRIX} is missing.") from None
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"Embedding cache {folder / _MATRIX} is corrupted: {exc}") from None
        keys = meta.get("keys")
        dim = meta.get("dim")
        if not isinstance(keys, list) or matrix.shape != (len(keys), dim):
            raise ValueError(
                f"Embedding cache {folder / _MATRIX} has shape {matrix.shape}, expected "
                f"({len(keys) if isinstance(keys, list) else '?'}, {dim}); corrupted."
            )
        cache = cls(str(meta.get("fingerprint")), int(dim))
        cache._vectors = dict(zip(keys, matrix.astype(np.float32, copy=False), strict=False))
        return cache
