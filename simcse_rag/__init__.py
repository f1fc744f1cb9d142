"""simcse-rag: SimCSE embeddings, hybrid BM25 + dense retrieval fused by RRF, domain adaptation.

The core never imports LangChain or LlamaIndex; adapters live in ``langchain_simcse`` and
``llama_index_simcse``.
"""

from __future__ import annotations

from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.schema import Hit, Passage, SourceHit

__version__ = "0.1.0"

__all__ = ["Hit", "Passage", "SimCSEEncoder", "SourceHit", "__version__"]
