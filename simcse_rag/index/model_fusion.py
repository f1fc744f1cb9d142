"""The fusion setting saved with a model folder (``retrieval`` in its ``simcse_rag.json``).

``simcse-rag adapt`` chooses the adapted model's fusion setting on held-back pairs
(:mod:`simcse_rag.adapt_fusion`) and saves it in the file where the encoder keeps its pooling
(:data:`simcse_rag.encoder.CONFIG_NAME`)::

    simcse_rag.json   {"format_version": 1, "pooling": ..., ...,
                       "retrieval": {"fusion": "rrf", "rrf_k": 60,
                                     "weights": {"dense": 2.0, "bm25": 1.0},
                                     "chosen_on": "..."}}

:meth:`simcse_rag.index.config.HybridConfig.for_model` reads it, so a retriever over that model
searches with it unless the user chose a setting. Other tools ignore the file (a
sentence-transformers loader reads only its own files).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simcse_rag import _io

#: File name of the setting in a model folder (the encoder's own settings file; the same name
#: as ``simcse_rag.encoder.CONFIG_NAME``, not imported so the index never imports torch).
MODEL_SETTINGS_FILE = "simcse_rag.json"
#: The HybridConfig fields the file may set.
FUSION_FIELDS: tuple[str, ...] = ("fusion", "rrf_k", "weights")


def read_model_fusion(model: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The fusion fields saved with the model folder ``model`` (``{}`` when none are).

    ``model`` may be a Hugging Face id or ``None`` (the bundled model): then nothing is saved.
    The values are returned as stored; :class:`~simcse_rag.index.config.HybridConfig` checks them.

    Raises:
        ValueError: The file exists but is not a JSON object, or its ``retrieval`` is not one.
    """
    if model is None:
        return {}
    path = Path(model) / MODEL_SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        retrieval = data.get("retrieval", {})
        if not isinstance(retrieval, Mapping):
            raise TypeError
    except (ValueError, AttributeError, TypeError):
        raise ValueError(
            f"{path} is not a simcse-rag model settings file (a JSON object whose 'retrieval' is "
            f"an object); remove its 'retrieval' entry to search with the library defaults."
        ) from None
    return {name: retrieval[name] for name in FUSION_FIELDS if name in retrieval}


def write_model_fusion(
    folder: str | os.PathLike[str],
    *,
    fusion: str,
    rrf_k: float,
    weights: Mapping[str, float],
    chosen_on: str,
) -> Path:
    """Save a fusion setting in ``folder``'s settings file, keeping the encoder's entries (adapt
    writes it into the model's temporary folder, renamed into place whole); returns the path.

    Args:
        folder: The model folder.
        fusion: Fusion method.
        rrf_k: RRF constant.
        weights: Weight of each source (``dense``, ``bm25``).
        chosen_on: How it was chosen (for a reader of the file).
    """
    path = Path(folder) / MODEL_SETTINGS_FILE
    payload = _io.read_json(path, what="model settings") if path.is_file() else {}
    payload.setdefault("format_version", 1)
    payload.update(
        {
            "retrieval": {
                "fusion": fusion,
                "rrf_k": rrf_k,
                "weights": dict(weights),
                "chosen_on": chosen_on,
            },
        }
    )
    _io.write_json(path, payload)
    return path
