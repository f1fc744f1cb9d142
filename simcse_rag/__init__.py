"""simcse-rag: SimCSE embeddings, hybrid BM25 + dense retrieval fused by RRF, domain adaptation.

The core never imports LangChain or LlamaIndex; adapters live in ``langchain_simcse`` and
``llama_index_simcse``.
"""

from __future__ import annotations

from simcse_rag import threads

# Before anything imports torch or faiss: their OpenMP runtimes read the wait policy once, at load.
threads.configure_environment()

from simcse_rag.encoder import SimCSEEncoder  # noqa: E402
from simcse_rag.schema import Hit, Passage, SourceHit  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Hit", "Passage", "SimCSEEncoder", "SourceHit", "__version__"]
