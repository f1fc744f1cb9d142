"""SimCSEEmbeddings: LangChain ``Embeddings`` backed by a :class:`simcse_rag.SimCSEEncoder`."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.passage_encoder import check_passage_backend


class SimCSEEmbeddings(BaseModel, Embeddings):
    """LangChain embeddings from a SimCSE / sentence-transformers model, fully offline.

    Vectors are L2-normalised by default, so cosine similarity equals the dot product. The
    async methods (``aembed_documents``, ``aembed_query``) run the encoder in a worker thread.

    Example:
        .. code-block:: python

            from langchain_simcse import SimCSEEmbeddings

            emb = SimCSEEmbeddings()  # bundled all-MiniLM-L6-v2
            emb = SimCSEEmbeddings(model_name_or_path="runs/adapted-model")
            vectors = emb.embed_documents(["fever in children", "tax on dividends"])
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())

    model_name_or_path: str | None = None
    """Local model folder or Hugging Face id; ``None`` loads the bundled all-MiniLM-L6-v2."""

    encoder: SimCSEEncoder | None = Field(default=None, exclude=True, repr=False)
    """An already-loaded encoder to use instead of loading ``model_name_or_path``."""

    batch_size: int = Field(default=64, gt=0)
    """Texts per forward pass."""

    show_progress: bool = False
    """Show a tqdm bar while embedding documents."""

    normalize: bool = True
    """L2-normalise the vectors."""

    passage_backend: str = "torch"
    """How documents are encoded: ``torch``, ``onnx`` (same vectors), ``onnx-int8`` (fastest) or
    ``auto`` (see :mod:`simcse_rag.passage_encoder`); queries always use PyTorch."""

    device: str | None = None
    """``"cpu"``, ``"cuda"``...; default CUDA when available, else CPU."""

    pooling: str | None = None
    """Pooling override (``cls``, ``cls_before_pooler``, ``mean``, ...); default from the model."""

    max_length: int | None = Field(default=None, gt=0)
    """Truncation length override in tokens; default from the model."""

    @model_validator(mode="after")
    def _load_encoder(self) -> SimCSEEmbeddings:
        check_passage_backend(self.passage_backend)
        if self.encoder is None:
            self.encoder = SimCSEEncoder.from_pretrained(
                self.model_name_or_path,
                pooling=self.pooling,
                max_length=self.max_length,
                device=self.device,
            )
        elif self.model_name_or_path is not None or self.pooling or self.max_length or self.device:
            raise ValueError(
                "SimCSEEmbeddings got both encoder= and loading options "
                "(model_name_or_path / pooling / max_length / device); pass only one of them."
            )
        return self

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self._get_encoder().dim

    def _get_encoder(self) -> SimCSEEncoder:
        if self.encoder is None:  # pragma: no cover - set by the validator
            raise RuntimeError("SimCSEEmbeddings has no encoder.")
        return self.encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents.

        Args:
            texts: The texts.

        Returns:
            One vector (list of floats) per text, in input order.
        """
        vectors = self._get_encoder().encode(
            texts,
            batch_size=self.batch_size,
            normalize=self.normalize,
            show_progress=self.show_progress,
            backend=self.passage_backend,
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one query.

        Args:
            text: The query.

        Returns:
            Its vector as a list of floats.
        """
        return self._get_encoder().embed_query(text, normalize=self.normalize).tolist()
