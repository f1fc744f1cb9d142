"""A saved retriever folder: a :class:`HybridRetriever` plus a framework adapter's settings.

The LangChain and LlamaIndex retrievers persist the same way, so the layout lives here::

    retriever.json   {"format_version", "k", "mode", "candidates"}
    index/           HybridRetriever.save(...)

A bare ``HybridRetriever.save`` folder (no ``retriever.json``) loads too, with no settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from simcse_rag import _io
from simcse_rag.index.hybrid import HybridRetriever

SETTINGS_FILE = "retriever.json"
#: Sub-folder holding the HybridRetriever.
INDEX_DIR = "index"
FORMAT_VERSION = 1
_KEYS = ("k", "mode", "candidates")


def save_retriever(
    index: HybridRetriever, path: str | os.PathLike[str], *, k: int, mode: str, candidates: int
) -> Path:
    """Save ``index`` and the adapter's search settings atomically.

    Returns:
        The folder.
    """
    target = Path(path)

    def write(tmp: Path) -> None:
        index.save(tmp / INDEX_DIR)
        _io.write_json(
            tmp / SETTINGS_FILE,
            {"format_version": FORMAT_VERSION, "k": k, "mode": mode, "candidates": candidates},
        )

    _io.atomic_write_dir(target, write)
    return target


def load_retriever(
    path: str | os.PathLike[str], encoder: Any | None = None
) -> tuple[HybridRetriever, dict[str, Any]]:
    """Load a folder written by :func:`save_retriever` (or by ``HybridRetriever.save``).

    Args:
        path: The folder.
        encoder: The encoder; ``None`` loads the model named in the index manifest.

    Returns:
        The retriever and the saved settings (``k``, ``mode``, ``candidates``; empty for a bare
        index folder).

    Raises:
        ValueError: An unsupported settings format, or any :meth:`HybridRetriever.load` error.
    """
    folder = Path(path)
    settings_file = folder / SETTINGS_FILE
    if not settings_file.is_file():
        return HybridRetriever.load(folder, encoder=encoder), {}
    data = _io.read_json(settings_file, what="retriever settings")
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{settings_file} has an unsupported format (expected format_version "
            f"{FORMAT_VERSION}); save the retriever again with this version."
        )
    settings = {key: data[key] for key in _KEYS if key in data}
    return HybridRetriever.load(folder / INDEX_DIR, encoder=encoder), settings
