"""sentence-transformers folder format: read a folder's pooling settings, write the module files.

A sentence-transformers model folder is a Hugging Face model plus ``modules.json`` (the module
pipeline), ``sentence_bert_config.json`` and one sub-folder per module (``1_Pooling``,
``2_Dense``, ...). :func:`read_settings` picks up the pooling and max length such a folder
declares; :func:`write_files` writes them next to a saved :class:`~simcse_rag.SimCSEEncoder`, so
``SentenceTransformer(path)`` gives the same vectors as our loader.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simcse_rag import _io
from simcse_rag.pooling import NEEDS_HIDDEN_STATES

if TYPE_CHECKING:
    from simcse_rag.encoder import SimCSEEncoder

logger = logging.getLogger(__name__)

#: Every module sub-folder :func:`write_files` may create (one pooling's layout differs from
#: another's, so a folder re-saved with a new pooling must drop the old ones).
MODULE_DIRS = ("1_Pooling", "2_Dense", "2_Normalize", "3_Normalize")

_WHAT = "model config"


def read_settings(folder: Path) -> dict[str, Any]:
    """Read pooling and max length from a sentence-transformers folder.

    Args:
        folder: A model folder.

    Returns:
        Empty for a plain Hugging Face folder (no ``modules.json``); else any of ``pooling``
        (our mode name), ``max_length``, ``has_dense`` and ``unsupported_pooling`` (the
        sentence-transformers modes we do not implement, for the caller's error message).

    Raises:
        ValueError: A sentence-transformers file exists but is not valid JSON (the file is named).
    """
    modules = _io.read_json_if_present(folder / "modules.json", what=_WHAT)
    if not isinstance(modules, list):
        return {}
    settings: dict[str, Any] = {}
    st_config = _io.read_json_if_present(folder / "sentence_bert_config.json", what=_WHAT)
    if isinstance(st_config, dict) and st_config.get("max_seq_length"):
        settings["max_length"] = int(st_config["max_seq_length"])
    types = [str(m.get("type", "")) for m in modules]
    for module in modules:
        if not str(module.get("type", "")).endswith("Pooling"):
            continue
        path = folder / module.get("path", "") / "config.json"
        cfg = _io.read_json_if_present(path, what=_WHAT) or {}
        # sentence-transformers >= 6 writes one "pooling_mode" key; older versions write booleans.
        mode = cfg.get("pooling_mode")
        if mode == "mean" or cfg.get("pooling_mode_mean_tokens"):
            settings["pooling"] = "mean"
        elif mode == "cls" or cfg.get("pooling_mode_cls_token"):
            # sentence-transformers' "cls" is the raw [CLS] state; a following Dense+Tanh is the
            # pooler we write for SimCSE's "cls" (our own config says so and takes precedence).
            settings["pooling"] = "cls_before_pooler"
        else:
            enabled = [str(mode)] if mode else []
            enabled += sorted(k for k, v in cfg.items() if k.startswith("pooling_mode_") and v)
            settings["unsupported_pooling"] = ", ".join(enabled) or "none"
    if any(t.endswith("Dense") for t in types) and "pooling" in settings:
        settings["has_dense"] = True
    return settings


def write_files(encoder: SimCSEEncoder, folder: Path) -> None:
    """Write sentence-transformers' module files for ``encoder`` into a saved model ``folder``.

    ``cls`` is written as Pooling(cls) + Dense(pooler weights, tanh); ``cls_before_pooler`` as
    Pooling(cls); ``mean`` as Pooling(mean); each followed by Normalize. Layer-averaging poolings
    have no sentence-transformers equivalent: nothing is written and a warning says so.

    Args:
        encoder: The encoder whose pooling, max length and pooler weights are written.
        folder: The folder holding its Hugging Face files (the module folders must not exist).
    """
    if encoder.pooling in NEEDS_HIDDEN_STATES:
        logger.warning(
            "pooling=%r has no sentence-transformers equivalent; SentenceTransformer(%s) "
            "would fall back to mean pooling. Load it with SimCSEEncoder.from_pretrained.",
            encoder.pooling,
            folder,
        )
        return
    modules: list[dict[str, Any]] = [
        _module(0, "", "Transformer"),
        _module(1, "1_Pooling", "Pooling"),
    ]
    (folder / "1_Pooling").mkdir()
    _io.write_json(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": encoder.dim,
            "pooling_mode_cls_token": encoder.pooling != "mean",
            "pooling_mode_mean_tokens": encoder.pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    if encoder.pooling == "cls":
        write_pooler_as_dense(encoder.model, folder / "2_Dense")
        modules.append(_module(2, "2_Dense", "Dense"))
    idx = len(modules)
    modules.append(_module(idx, f"{idx}_Normalize", "Normalize"))
    (folder / f"{idx}_Normalize").mkdir()
    _io.write_json(folder / "modules.json", modules)
    _io.write_json(
        folder / "sentence_bert_config.json",
        {"max_seq_length": encoder.max_length, "do_lower_case": False},
    )
    _io.write_json(
        folder / "config_sentence_transformers.json",
        {"model_type": "SentenceTransformer", "similarity_fn_name": "cosine", "prompts": {}},
    )


def write_pooler_as_dense(model: Any, folder: Path) -> None:
    """Write a BERT pooler (dense + tanh, SimCSE's MLP head) as a sentence-transformers Dense.

    Args:
        model: A Hugging Face model with a ``pooler.dense`` linear layer.
        folder: The ``Dense`` module folder to create.

    Raises:
        ValueError: The model has no pooler layer.
    """
    from safetensors.torch import save_file

    dense = getattr(getattr(model, "pooler", None), "dense", None)
    if dense is None:
        raise ValueError(
            "pooling='cls' needs the model's pooler layer, which this model lacks; "
            "use pooling='cls_before_pooler' or 'mean'."
        )
    folder.mkdir()
    _io.write_json(
        folder / "config.json",
        {
            "in_features": dense.in_features,
            "out_features": dense.out_features,
            "bias": dense.bias is not None,
            "activation_function": "torch.nn.modules.activation.Tanh",
        },
    )
    tensors = {"linear.weight": dense.weight.detach().cpu().float().contiguous()}
    if dense.bias is not None:
        tensors["linear.bias"] = dense.bias.detach().cpu().float().contiguous()
    save_file(tensors, str(folder / "model.safetensors"))


def _module(idx: int, path: str, kind: str) -> dict[str, Any]:
    return {
        "idx": idx,
        "name": str(idx),
        "path": path,
        "type": f"sentence_transformers.models.{kind}",
    }
