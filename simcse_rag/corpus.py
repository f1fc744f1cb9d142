"""Read passages from a BEIR ``corpus.jsonl`` or a plain ``.txt`` file (one passage per line).

Errors name the file and line number so a bad line in a 100k-line corpus is easy to find.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from simcse_rag import _io
from simcse_rag.schema import Passage

#: File suffixes read as JSON Lines.
JSONL_SUFFIXES = (".jsonl", ".json")


def _join(title: str, text: str) -> str:
    return f"{title}\n{text}" if title else text


def iter_jsonl_corpus(path: Path) -> Iterator[tuple[int, Passage]]:
    """Yield ``(line_number, passage)`` from a BEIR-style JSON Lines corpus.

    Each line is an object with ``_id`` (or ``id``) and ``text``, optionally ``title`` (prepended
    to the text on its own line) and ``metadata``; other keys go into ``metadata``.

    Raises:
        ValueError: Malformed JSON, a missing/empty id or a non-string text (``file:line`` named).
    """
    for lineno, obj in _io.iter_jsonl(path):
        doc_id = obj.get("_id", obj.get("id"))
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        if not isinstance(doc_id, str) or not doc_id:
            raise ValueError(
                f"{path}:{lineno}: missing or empty '_id'; every line needs a string id."
            )
        text = obj.get("text")
        title = obj.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise ValueError(
                f"{path}:{lineno}: 'text' (and 'title') must be strings (id {doc_id!r})."
            )
        metadata = obj.get("metadata")
        if metadata is None:
            metadata = {k: v for k, v in obj.items() if k not in ("_id", "id", "text", "metadata")}
        if not isinstance(metadata, dict):
            raise ValueError(f"{path}:{lineno}: 'metadata' must be an object (id {doc_id!r}).")
        yield lineno, Passage(doc_id, _join(title, text), metadata)


def iter_text_corpus(path: Path) -> Iterator[tuple[int, Passage]]:
    """Yield ``(line_number, passage)`` per non-blank line; the id is the line number."""
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                text = line.rstrip("\r\n")
                if text.strip():
                    yield lineno, Passage(str(lineno), text, {})
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text; re-encode it as UTF-8.") from exc


def read_corpus(path: str | os.PathLike[str], *, allow_empty: bool = False) -> list[Passage]:
    """Read a corpus file: BEIR ``corpus.jsonl`` (``.jsonl`` / ``.json``) or ``.txt`` lines.

    Args:
        path: The file.
        allow_empty: Return ``[]`` for an empty file instead of raising.

    Raises:
        ValueError: Missing file, malformed line (named by number), duplicate ids (both line
            numbers named) or, unless ``allow_empty``, no passages.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Corpus file {str(path)!r} does not exist.")
    reader = iter_jsonl_corpus if path.suffix.lower() in JSONL_SUFFIXES else iter_text_corpus
    passages: list[Passage] = []
    first_line: dict[str, int] = {}
    for lineno, passage in reader(path):
        if passage.id in first_line:
            raise ValueError(
                f"{path}:{lineno}: duplicate id {passage.id!r} (first on line "
                f"{first_line[passage.id]}); ids must be unique."
            )
        first_line[passage.id] = lineno
        passages.append(passage)
    if not passages and not allow_empty:
        raise ValueError(f"Corpus {str(path)!r} is empty; it needs at least one passage.")
    return passages
