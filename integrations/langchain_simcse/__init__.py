"""LangChain adapters for simcse-rag: ``SimCSEEmbeddings`` and ``SimCSERetriever``.

Install with ``pip install 'simcse-rag[langchain]'``. The adapters only translate types; search,
fusion and persistence live in :mod:`simcse_rag`.
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "langchain_simcse needs LangChain, which is not installed: "
        "pip install 'simcse-rag[langchain]'"
    ) from exc

from langchain_simcse.embeddings import SimCSEEmbeddings
from langchain_simcse.retrievers import SimCSERetriever

__all__ = ["SimCSEEmbeddings", "SimCSERetriever"]
