"""HybridConfig: the settings of a :class:`~simcse_rag.index.hybrid.HybridRetriever`.

It lives in its own module because both the retriever and its persistence
(:mod:`simcse_rag.index.persist`, which rebuilds it from a manifest) need it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from simcse_rag import _validate
from simcse_rag.index.bm25 import BACKENDS
from simcse_rag.index.dense import KINDS
from simcse_rag.index.fusion import DEFAULT_FUSION, FUSION_METHODS
from simcse_rag.index.model_fusion import MODEL_SETTINGS_FILE, read_model_fusion
from simcse_rag.index.tokenizers import TOKENIZERS
from simcse_rag.passage_encoder import DEFAULT_BACKEND, check_passage_backend
from simcse_rag.query_encoder import check_query_backend

logger = logging.getLogger(__name__)

#: The two sources fused by a hybrid search (keys of :attr:`HybridConfig.weights`).
SOURCES: tuple[str, ...] = ("dense", "bm25")
#: HybridConfig fields that change how queries are searched, not what the indexes hold.
QUERY_TIME_FIELDS: tuple[str, ...] = ("fusion", "rrf_k", "weights", "batch_size", "query_backend")


@dataclass(frozen=True)
class HybridConfig:
    """Settings of a :class:`~simcse_rag.index.hybrid.HybridRetriever` (saved in its manifest).

    Attributes:
        dense_index: DenseIndex kind: ``auto``, ``flat``, ``ivf`` or ``hnsw``.
        tokenizer: BM25 tokenizer: ``auto``, ``en`` or ``zh``.
        bm25_backend: ``bm25s`` or ``rank_bm25``.
        fusion: How the two rankings are fused: ``dist_peak`` (the default: ``dist_based`` with
            each ranking's weight scaled per query by how far its top hit stands out),
            ``rrf`` (Reciprocal Rank Fusion), ``rrf_peak`` (``rrf`` weighted likewise),
            ``relative_score`` (min-max scaled scores, weighted sum) or ``dist_based`` (scores
            scaled over mean ± 3σ, weighted sum); see :mod:`simcse_rag.index.fusion`.
        rrf_k: RRF constant (``rrf`` and ``rrf_peak`` only).
        weights: Fusion weight of each source (``dense``, ``bm25``).
        batch_size: Encoding batch size.
        query_backend: How queries are encoded: ``auto`` (ONNX Runtime int8 on CPU when
            onnxruntime is installed, else PyTorch), ``torch``, ``onnx`` (fp32, same vectors as
            PyTorch) or ``onnx-int8``. See :mod:`simcse_rag.query_encoder`.
        passage_backend: How passages are encoded: ``auto`` (ONNX Runtime int8 on CPU when
            onnxruntime is installed, else PyTorch), ``torch``, ``onnx`` or ``onnx-int8`` (see
            :mod:`simcse_rag.passage_encoder`). The backend that made an
            index's vectors is recorded in its manifest and new passages use the same one.
    """

    dense_index: str = "auto"
    tokenizer: str = "auto"
    bm25_backend: str = "bm25s"
    fusion: str = DEFAULT_FUSION  # why: docs/benchmarks.md, "Leave one dataset out"
    rrf_k: float = 60
    weights: Mapping[str, float] = field(default_factory=lambda: {"dense": 1.0, "bm25": 1.0})
    batch_size: int = 64
    query_backend: str = "auto"
    passage_backend: str = DEFAULT_BACKEND

    def __post_init__(self) -> None:
        _validate.one_of(self.dense_index, "dense_index", KINDS)
        _validate.one_of(self.tokenizer, "tokenizer", TOKENIZERS)
        _validate.one_of(self.bm25_backend, "bm25_backend", BACKENDS)
        _validate.one_of(self.fusion, "fusion", FUSION_METHODS)
        # Checked, not replaced: the manifest keeps rrf_k as the user wrote it (60, not 60.0).
        _validate.non_negative_number(self.rrf_k, "rrf_k")
        weights = _validate.check_weights(self.weights, SOURCES)
        batch_size = _validate.positive_int(self.batch_size, "batch_size")
        check_query_backend(self.query_backend)
        check_passage_backend(self.passage_backend)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "batch_size", batch_size)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HybridConfig:
        """Rebuild from :meth:`to_dict` output; a dict saved before ``fusion`` existed was
        searched with RRF and keeps it (the default changed, what a saved index does did not)."""
        return cls(**{"fusion": "rrf", **data})

    @classmethod
    def for_model(cls, model: str | os.PathLike[str] | None, **chosen: Any) -> HybridConfig:
        """The config for a retriever over ``model``: the fields in ``chosen`` as given, the
        fusion setting saved with the model folder (``simcse_rag.json``, written by
        ``simcse-rag adapt``) for fusion fields not in ``chosen``, the defaults for the rest.

        Args:
            model: Model folder (a Hugging Face id or ``None`` has no saved setting).
            **chosen: HybridConfig fields the user chose explicitly.

        Raises:
            ValueError: A malformed settings file, or a value HybridConfig refuses.
        """
        saved = {k: v for k, v in read_model_fusion(model).items() if k not in chosen}
        if saved:
            logger.info(
                "fusion setting saved with the model (%s): %s",
                os.path.join(str(model), MODEL_SETTINGS_FILE),
                ", ".join(f"{k}={v}" for k, v in saved.items()),
            )
        try:
            return cls(**{**saved, **chosen})
        except (TypeError, ValueError) as exc:
            if not saved:
                raise
            raise ValueError(
                f"{exc} (from {os.path.join(str(model), MODEL_SETTINGS_FILE)}; fix or delete it)"
            ) from None

    def with_query_settings(self, **changes: Any) -> HybridConfig:
        """A copy with other query-time settings (:data:`QUERY_TIME_FIELDS`) only.

        Raises:
            ValueError: An unknown field, one the built indexes depend on, or a refused value.
        """
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise ValueError(
                f"Unknown HybridConfig field(s) {unknown}; choose from {sorted(fields)}."
            )
        fixed = sorted(set(changes) - set(QUERY_TIME_FIELDS))
        if fixed:
            raise ValueError(
                f"{', '.join(fixed)} cannot change on a built retriever (the indexes depend on "
                f"it); rebuild with the new setting. Query-time settings: "
                f"{', '.join(QUERY_TIME_FIELDS)}."
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        data = asdict(self)
        data["weights"] = dict(self.weights)
        return data
