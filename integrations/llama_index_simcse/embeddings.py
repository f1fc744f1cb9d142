"""SimCSEEmbedding: LlamaIndex ``BaseEmbedding`` backed by a :class:`simcse_rag.SimCSEEncoder`."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import Field, PrivateAttr

from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.passage_encoder import check_passage_backend


class SimCSEEmbedding(BaseEmbedding):
    """LlamaIndex embedding model from a SimCSE / sentence-transformers model, fully offline.

    Works as ``Settings.embed_model`` and wherever LlamaIndex takes an ``embed_model``. Batches of
    ``embed_batch_size`` texts go through the encoder in one call; the async methods run the
    encoder in a worker thread so they do not block the event loop.

    Example:
        .. code-block:: python

            from llama_index.core import Settings
            from llama_index_simcse import SimCSEEmbedding

            Settings.embed_model = SimCSEEmbedding()  # bundled all-MiniLM-L6-v2
    """

    model_name_or_path: str | None = Field(
        default=None,
        description="Local model folder or Hugging Face id; None loads the bundled "
        "all-MiniLM-L6-v2.",
    )
    normalize: bool = Field(default=True, description="L2-normalise the vectors.")
    passage_backend: str = Field(
        default="torch",
        description="How documents (text embeddings) are encoded: torch, onnx (same vectors), "
        "onnx-int8 (fastest) or auto; queries always use PyTorch. See simcse_rag.passage_encoder.",
    )
    device: str | None = Field(
        default=None, description="'cpu', 'cuda'...; default CUDA when available, else CPU."
    )
    pooling: str | None = Field(
        default=None, description="Pooling override (cls, cls_before_pooler, mean, ...)."
    )
    max_length: int | None = Field(
        default=None, gt=0, description="Truncation length override in tokens."
    )

    _encoder: SimCSEEncoder = PrivateAttr()

    def __init__(
        self,
        model_name_or_path: str | None = None,
        embed_batch_size: int = 64,
        *,
        encoder: SimCSEEncoder | None = None,
        **kwargs: Any,
    ) -> None:
        """Load the model (or wrap ``encoder``).

        Args:
            model_name_or_path: Model folder or hub id; ``None`` for the bundled default.
            embed_batch_size: Texts per forward pass.
            encoder: An already-loaded encoder to use instead of loading a model.
            **kwargs: Other fields (``normalize``, ``device``, ``pooling``, ``max_length``,
                ``callback_manager``, ...).

        Raises:
            ValueError: Both ``encoder`` and loading options were given, or the model cannot be
                loaded.
        """
        loading = ("device", "pooling", "max_length")
        if encoder is not None and (
            model_name_or_path is not None or any(kwargs.get(k) is not None for k in loading)
        ):
            raise ValueError(
                "SimCSEEmbedding got both encoder= and loading options "
                "(model_name_or_path / device / pooling / max_length); pass only one of them."
            )
        check_passage_backend(kwargs.get("passage_backend", "torch"))
        if encoder is None:
            encoder = SimCSEEncoder.from_pretrained(
                model_name_or_path, **{k: kwargs.get(k) for k in loading}
            )
        kwargs.setdefault("model_name", encoder.name_or_path)
        super().__init__(
            model_name_or_path=model_name_or_path, embed_batch_size=embed_batch_size, **kwargs
        )
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "SimCSEEmbedding"

    @property
    def encoder(self) -> SimCSEEncoder:
        """The underlying encoder."""
        return self._encoder

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self._encoder.dim

    def _encode(self, texts: list[str], backend: str = "torch") -> list[Embedding]:
        return self._encoder.encode(
            texts, batch_size=self.embed_batch_size, normalize=self.normalize, backend=backend
        ).tolist()

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._encode([query])[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._encode([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._encode(texts, self.passage_backend)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
