"""LlamaIndex adapters for simcse-rag: ``SimCSEEmbedding`` and ``HybridRRFRetriever``.

Install with ``pip install 'simcse-rag[llamaindex]'``. The adapters only translate types; search,
fusion and persistence live in :mod:`simcse_rag`.
"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "llama_index_simcse needs LlamaIndex, which is not installed: "
        "pip install 'simcse-rag[llamaindex]'"
    ) from exc

from llama_index_simcse.embeddings import SimCSEEmbedding
from llama_index_simcse.retrievers import HybridRRFRetriever

__all__ = ["HybridRRFRetriever", "SimCSEEmbedding"]
