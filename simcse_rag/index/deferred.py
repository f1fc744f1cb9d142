"""DeferredEncoder: the model a saved index names, loaded only when something needs PyTorch.

Searching a saved index through its cached ONNX query model (:mod:`simcse_rag.onnx_cache`)
needs the model's fingerprint and dimension, which the manifest holds, but not the model
itself; loading it (and importing torch and transformers) takes seconds. Adding passages, or
a fallback to PyTorch, loads it on first use.
"""

from __future__ import annotations

import threading
from typing import Any

from simcse_rag.onnx_cache import QueryModel


class DeferredEncoder:
    """Stands for the encoder of a saved index until :meth:`load` is called.

    Args:
        name_or_path: The model named in the manifest (``""``: the bundled default model).
        fingerprint: The manifest's model fingerprint.
        dim: The manifest's embedding dimension.
        query_model: The index's cached query model (checked against ``fingerprint``).
    """

    def __init__(
        self, name_or_path: str, fingerprint: str, dim: int, query_model: QueryModel
    ) -> None:
        self.name_or_path = name_or_path
        self.dim = dim
        self.query_model = query_model
        self._fingerprint = fingerprint
        self._encoder: Any | None = None
        self._lock = threading.Lock()

    def fingerprint(self) -> str:
        """The index's model fingerprint (from the manifest; nothing is hashed)."""
        return self._fingerprint

    @property
    def loaded(self) -> bool:
        """Whether the PyTorch model has been loaded."""
        return self._encoder is not None

    def load(self) -> Any:
        """Load the model (once; thread-safe) and check it is the one the index was built with.

        Raises:
            ValueError: The model cannot be loaded, or its fingerprint differs from the index's.
        """
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    from simcse_rag.encoder import SimCSEEncoder

                    encoder = SimCSEEncoder.from_pretrained(self.name_or_path or None)
                    found = encoder.fingerprint()
                    if found != self._fingerprint:
                        raise ValueError(
                            f"the index was built with model {self.name_or_path!r} (fingerprint "
                            f"{self._fingerprint}), but that model now has fingerprint {found}; "
                            "load the index with the original model (--model) or rebuild it."
                        )
                    self._encoder = encoder
        return self._encoder
