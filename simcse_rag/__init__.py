"""simcse-rag: SimCSE embeddings, hybrid BM25 + dense retrieval fused by RRF, domain adaptation.

The core never imports LangChain or LlamaIndex; adapters live in ``langchain_simcse`` and
``llama_index_simcse``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simcse_rag import threads
from simcse_rag.schema import Hit, Passage, SourceHit

# Before anything imports torch or faiss: their OpenMP runtimes read the wait policy once, at load.
threads.configure_environment()

if TYPE_CHECKING:
    from simcse_rag.encoder import SimCSEEncoder

__version__ = "0.1.0"

__all__ = ["Hit", "Passage", "SimCSEEncoder", "SourceHit", "__version__"]


def __getattr__(name: str) -> Any:
    # SimCSEEncoder imports torch and transformers (seconds); a search through an index's cached
    # ONNX query model needs neither, so the encoder is imported on first use only.
    if name == "SimCSEEncoder":
        from simcse_rag.encoder import SimCSEEncoder

        return SimCSEEncoder
    raise AttributeError(f"module 'simcse_rag' has no attribute {name!r}")
