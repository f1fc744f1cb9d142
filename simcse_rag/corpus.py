"""Read passages from a corpus file: BEIR JSON Lines, CSV / TSV with a header, or plain text.

Accepted layouts (the format is chosen by the file's extension; any other extension is an error):

* ``.jsonl`` / ``.json``: one JSON object per line (BEIR ``corpus.jsonl``) with ``_id`` and
  ``text``, optionally ``title`` and ``metadata``; other keys go into ``metadata``. ``id`` is
  accepted instead of ``_id`` (LangChain and LlamaIndex exports use it); a line with both that
  differ is an error.
* ``.csv`` (comma) / ``.tsv`` (tab): a header row naming ``_id`` (or ``id``) and ``text``,
  optionally ``title``; every other column goes into ``metadata``. CSV follows the usual quoting
  rules; TSV has no quoting, so a TSV field cannot hold a tab or a line break.
* ``.txt``: one passage per non-blank line; the id is the line number.

Files are UTF-8 (a leading byte-order mark, as Excel writes, is ignored). Errors name the file and
line number so a bad line in a 100k-line corpus is easy to find.
"""

from __future__ import annotations

import csv
import os
import reprlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from simcse_rag import _io
from simcse_rag.schema import Passage

#: File suffixes read as JSON Lines.
JSONL_SUFFIXES = (".jsonl", ".json")
#: File suffixes read as delimited tables, with their delimiter.
TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}
#: Every suffix :func:`read_corpus` accepts.
CORPUS_SUFFIXES = (*JSONL_SUFFIXES, *TABLE_DELIMITERS, ".txt")
#: One-line description of the accepted layouts, for error messages and CLI help.
CORPUS_FORMATS = (
    ".jsonl/.json (BEIR: _id or id, text, optional title), .csv/.tsv with a header row of "
    "the same columns, or .txt (one passage per line)"
)
_ID_KEYS = ("_id", "id")


def _join(title: str, text: str) -> str:
    return f"{title}\n{text}" if title else text


def _row_id(path: Path, lineno: int, row: Mapping[str, Any]) -> str:
    """The row's id from ``_id`` or its alias ``id`` (integers accepted, as BEIR files hold)."""
    ids = {}
    for key in _ID_KEYS:
        value = row.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value is not None and value != "":
            ids[key] = value
    if len(set(map(repr, ids.values()))) > 1:
        raise ValueError(
            f"{path}:{lineno}: '_id' {ids['_id']!r} and 'id' {ids['id']!r} differ; "
            "keep one of the two fields (or make them equal)."
        )
    doc_id = ids.get("_id", ids.get("id"))
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError(
            f"{path}:{lineno}: missing or empty '_id' (or 'id'); every row needs a string id."
        )
    return doc_id


def _passage(path: Path, lineno: int, row: Mapping[str, Any]) -> Passage:
    """Turn one JSON object or table row into a :class:`Passage` (see the module docs)."""
    doc_id = _row_id(path, lineno, row)
    text = row.get("text")
    title = row.get("title") or ""
    if not isinstance(text, str) or not isinstance(title, str):
        raise ValueError(f"{path}:{lineno}: 'text' (and 'title') must be strings (id {doc_id!r}).")
    metadata = row.get("metadata")
    if metadata is None:
        metadata = {k: v for k, v in row.items() if k not in (*_ID_KEYS, "text", "metadata")}
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}:{lineno}: 'metadata' must be an object (id {doc_id!r}).")
    return Passage(doc_id, _join(title, text), metadata)


def iter_jsonl_corpus(path: Path) -> Iterator[tuple[int, Passage]]:
    """Yield ``(line_number, passage)`` from a BEIR-style JSON Lines corpus.

    Each line is an object with ``_id`` (or its alias ``id``) and ``text``, optionally ``title``
    (prepended to the text on its own line) and ``metadata``; other keys go into ``metadata``.

    Raises:
        ValueError: Malformed JSON, a missing/empty id, ``_id`` and ``id`` that differ, or a
            non-string text (``file:line`` named).
    """
    for lineno, obj in _io.iter_jsonl(path):
        yield lineno, _passage(path, lineno, obj)


def iter_table_corpus(path: Path) -> Iterator[tuple[int, Passage]]:
    """Yield ``(line_number, passage)`` from a ``.csv`` (comma) or ``.tsv`` (tab) corpus.

    The first row is a header naming ``_id`` (or ``id``) and ``text``, optionally ``title``
    (matched case-insensitively); every other column goes into ``metadata`` as a string. Blank
    rows are skipped.

    Raises:
        ValueError: A header without the required columns (all missing ones named), a duplicate
            column, a row with the wrong number of fields or broken quoting (line named), an
            empty id, or a file that is not UTF-8.
    """
    tsv = path.suffix.lower() == ".tsv"
    start = 1
    try:
        # utf-8-sig: spreadsheet exports start with a byte-order mark that would otherwise glue
        # itself to the first column name.
        with open(path, encoding="utf-8-sig", newline="") as fh:
            # TSV (as in BEIR qrels) has no quoting, so a passage may start with a bare quote.
            reader = (
                csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
                if tsv
                else csv.reader(fh, strict=True)
            )
            columns: list[str] | None = None
            for row in reader:
                if any(cell.strip() for cell in row):
                    if columns is None:
                        columns = _table_columns(path, row)
                    else:
                        yield start, _passage(path, start, _table_row(path, start, row, columns))
                start = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}); re-encode it.") from exc
    except csv.Error as exc:
        raise ValueError(f"{path}:{start}: malformed row ({exc}); check its quoting.") from exc


def _table_columns(path: Path, header: list[str]) -> list[str]:
    """Normalise a header row: known column names lower-cased, others kept as written."""
    known = {*_ID_KEYS, "text", "title"}
    columns = [c.strip().lower() if c.strip().lower() in known else c.strip() for c in header]
    missing = [] if any(k in columns for k in _ID_KEYS) else ["'_id' (or 'id')"]
    missing += [] if "text" in columns else ["'text'"]
    if missing:
        raise ValueError(
            f"{path}: the header row {reprlib.repr(header)} lacks the column(s) "
            f"{' and '.join(missing)}; "
            "a .csv/.tsv corpus starts with a header row naming _id (or id), text and "
            "optionally title."
        )
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise ValueError(f"{path}: the header row names {duplicates} more than once; rename them.")
    return columns


def _table_row(path: Path, lineno: int, row: list[str], columns: list[str]) -> dict[str, str]:
    if len(row) != len(columns):
        sep = "tab" if path.suffix.lower() == ".tsv" else "comma"
        raise ValueError(
            f"{path}:{lineno}: expected {len(columns)} {sep}-separated fields "
            f"({', '.join(columns)}), found {len(row)}; check the delimiter and quoting of that "
            "line."
        )
    return dict(zip(columns, row, strict=True))


def iter_text_corpus(path: Path) -> Iterator[tuple[int, Passage]]:
    """Yield ``(line_number, passage)`` per non-blank line; the id is the line number."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, start=1):
                text = line.rstrip("\r\n")
                if text.strip():
                    yield lineno, Passage(str(lineno), text, {})
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text; re-encode it as UTF-8.") from exc


def read_corpus(path: str | os.PathLike[str], *, allow_empty: bool = False) -> list[Passage]:
    """Read a corpus file in one of the layouts of the module docs, chosen by extension.

    ``.jsonl`` / ``.json`` (BEIR), ``.csv`` / ``.tsv`` (header row with ``_id`` or ``id``,
    ``text``, optional ``title``; other columns become metadata) or ``.txt`` (one passage per
    line, id = line number).

    Args:
        path: The file.
        allow_empty: Return ``[]`` for an empty file instead of raising.

    Raises:
        ValueError: Missing file, unsupported extension, malformed line (named by number),
            duplicate ids (both line numbers named) or, unless ``allow_empty``, no passages.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Corpus file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in CORPUS_SUFFIXES:
        raise ValueError(
            f"Corpus file {str(path)!r} has an unsupported extension {suffix or '(none)'!r}; "
            f"use {CORPUS_FORMATS}."
        )
    if suffix in JSONL_SUFFIXES:
        reader = iter_jsonl_corpus
    elif suffix in TABLE_DELIMITERS:
        reader = iter_table_corpus
    else:
        reader = iter_text_corpus
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
