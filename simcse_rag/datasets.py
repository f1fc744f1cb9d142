"""The one reader of BEIR-layout folders, and the query-set types every command shares.

A BEIR folder holds ``corpus.jsonl`` (read by :mod:`simcse_rag.corpus`), ``queries.jsonl``
(``{"_id", "text"}`` per line) and ``qrels/<split>.tsv`` (``query-id  corpus-id  score`` with a
header line). Evaluation, adaptation, pair loading, the CLI, the cookbook and the benchmarks all
read them here, so one mistake gets one exception type and one wording wherever it is made:

* :class:`MissingSplitError` for a split without a qrels file (the splits present are named);
* :class:`MissingFileError` for a missing folder, ``queries.jsonl``, ``corpus.jsonl`` or qrels
  file;
* ``ValueError`` naming ``file:line`` for a malformed line, and naming the count and first
  examples for qrels that judge queries ``queries.jsonl`` lacks.

Both exception types subclass ``ValueError`` *and* ``FileNotFoundError``: before this module the
readers disagreed on which of the two a missing file raised, and callers catch either.
"""

from __future__ import annotations

import csv
import logging
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from simcse_rag import _io
from simcse_rag.corpus import iter_jsonl_corpus
from simcse_rag.schema import Passage

logger = logging.getLogger(__name__)

#: How many offending ids an error message shows.
_EXAMPLES = 5
#: First cells that mark a qrels header line.
_QRELS_HEADERS = ("query-id", "query_id", "qid")


class MissingFileError(ValueError, FileNotFoundError):
    """A BEIR folder, or a file it needs, does not exist."""


class MissingSplitError(MissingFileError):
    """A BEIR folder has no ``qrels/<split>.tsv`` for the split asked for."""


@dataclass(frozen=True)
class QuerySet:
    """Queries with graded relevance judgments: what retrieval is evaluated on.

    Attributes:
        queries: Query id -> text. May hold queries without judgments.
        qrels: Query id -> {passage id: grade}; a grade >= 1 marks a relevant passage. Every
            judged query has its text in ``queries``.
        source: Where the set comes from (shown in reports).

    Raises:
        TypeError: Ids or texts that are not strings, or grades that are not integers.
        ValueError: ``qrels`` judge queries missing from ``queries``.
    """

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source: str = ""

    def __post_init__(self) -> None:
        _check_query_set(self.queries, self.qrels)
        if not isinstance(self.source, str):
            raise TypeError(f"source must be a string, got {type(self.source).__name__}.")

    def with_relevant(self) -> QuerySet:
        """The queries that have at least one relevant passage (grade >= 1), in qrels order."""
        qrels = {q: docs for q, docs in self.qrels.items() if any(g >= 1 for g in docs.values())}
        return QuerySet({q: self.queries[q] for q in qrels}, qrels, self.source)


@dataclass(frozen=True)
class BeirData:
    """A BEIR-layout retrieval set: a corpus and the queries judged against it.

    Attributes:
        corpus: Passages (``text`` = title + newline + text when there is a title).
        queries: Query id -> text (from a folder: only the queries judged in the split).
        qrels: Query id -> {doc id: grade}.

    Raises:
        TypeError, ValueError: As :class:`QuerySet` for ``queries`` and ``qrels``.
    """

    corpus: list[Passage]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_query_set(self.queries, self.qrels)

    def query_set(self, source: str = "") -> QuerySet:
        """The queries and judgments as a :class:`QuerySet` (what ``adapt`` evaluates on)."""
        return QuerySet(self.queries, self.qrels, source)


def _check_query_set(queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]]) -> None:
    """Check the shape shared by :class:`QuerySet` and :class:`BeirData`.

    Raises:
        TypeError: Not mappings, ids or texts that are not strings, grades that are not integers.
        ValueError: ``qrels`` judge queries missing from ``queries``.
    """
    if not isinstance(queries, Mapping) or not isinstance(qrels, Mapping):
        raise TypeError(
            "queries must map query id -> text and qrels query id -> {passage id: grade}, got "
            f"{type(queries).__name__} and {type(qrels).__name__}."
        )
    bad = [q for q, text in queries.items() if not isinstance(q, str) or not isinstance(text, str)]
    if bad:
        raise TypeError(f"queries must map string ids to string texts; query {bad[0]!r} does not.")
    for qid, docs in qrels.items():
        if not isinstance(qid, str) or not isinstance(docs, Mapping):
            raise TypeError(f"qrels must map string query ids to {{passage id: grade}}; {qid!r}.")
        for doc_id, grade in docs.items():
            if not isinstance(doc_id, str) or not _is_grade(grade):
                raise TypeError(
                    f"qrels[{qid!r}] must map string passage ids to integer grades, got "
                    f"{doc_id!r}: {grade!r}."
                )
    unknown = [q for q in qrels if q not in queries]
    if unknown:
        raise ValueError(
            f"qrels judge {len(unknown)} queries that have no text (e.g. {_examples(unknown)}); "
            "give every judged query its text in queries."
        )


def _is_grade(grade: object) -> bool:
    return isinstance(grade, numbers.Integral) and not isinstance(grade, bool)


def _examples(ids: list[str]) -> str:
    return ", ".join(repr(i) for i in ids[:_EXAMPLES])


def available_splits(folder: str | os.PathLike[str]) -> list[str]:
    """The qrels splits of a BEIR folder (the names of its ``qrels/*.tsv`` files), sorted."""
    return sorted(p.stem for p in (Path(folder) / "qrels").glob("*.tsv") if p.is_file())


def qrels_file(folder: str | os.PathLike[str], split: str) -> Path:
    """The path of ``qrels/<split>.tsv`` in a BEIR folder.

    Raises:
        MissingFileError: ``folder`` does not exist.
        MissingSplitError: It has no qrels file for ``split`` (the splits present are named).
    """
    folder = _beir_folder(folder)
    path = folder / "qrels" / f"{split}.tsv"
    if path.is_file():
        return path
    splits = available_splits(folder)
    if splits:
        fix = f"use one of the splits in {path.parent}: {', '.join(splits)}"
    else:
        fix = f"add qrels/{split}.tsv (query-id, corpus-id, score) to {folder}"
    raise MissingSplitError(
        f"No qrels for split {split!r}: {path} not found (available splits: {splits}); {fix}."
    )


def _beir_folder(folder: str | os.PathLike[str]) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(
            f"BEIR folder {str(folder)!r} does not exist; give a folder holding corpus.jsonl, "
            "queries.jsonl and qrels/<split>.tsv."
        )
    return folder


def _need_file(path: Path) -> Path:
    if not path.is_file():
        raise MissingFileError(
            f"{path} not found; a BEIR folder holds corpus.jsonl, queries.jsonl and "
            "qrels/<split>.tsv."
        )
    return path


def load_qrels(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (``query-id  corpus-id  score`` with a header line).

    Raises:
        MissingFileError: The file does not exist.
        ValueError: A malformed row (its line number is named), or text that is not UTF-8.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"qrels file {str(path)!r} does not exist.")
    qrels: dict[str, dict[str, int]] = {}
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            # csv rather than str.split: it gives the physical line number of a bad row.
            reader = csv.reader(fh, delimiter="\t")
            for lineno, row in enumerate(reader, start=1):
                if not row or (lineno == 1 and row[0].strip().lower() in _QRELS_HEADERS):
                    continue
                if len(row) < 3:
                    raise ValueError(
                        f"{path}:{lineno}: expected 3 tab-separated columns, got {len(row)}."
                    )
                try:
                    grade = int(float(row[2]))
                except (ValueError, OverflowError):
                    raise ValueError(
                        f"{path}:{lineno}: score {row[2]!r} is not a number."
                    ) from None
                qrels.setdefault(row[0], {})[row[1]] = grade
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}); re-encode it.") from None
    except csv.Error as exc:  # e.g. a field over csv's 128 KiB limit
        raise ValueError(f"{path}:{reader.line_num}: malformed row ({exc}).") from None
    return qrels


def load_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read ``{_id: text}`` from a BEIR ``queries.jsonl``.

    Raises:
        MissingFileError: The file does not exist.
        ValueError: A line that is not a JSON object with a string (or integer) ``_id`` and a
            string ``text`` (its line number is named).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"queries file {str(path)!r} does not exist.")
    queries: dict[str, str] = {}
    for lineno, obj in _io.iter_jsonl(path):
        qid, text = obj.get("_id"), obj.get("text")
        if isinstance(qid, bool) or not isinstance(qid, (str, int)) or not isinstance(text, str):
            raise ValueError(f"{path}:{lineno}: needs string '_id' and 'text'.")
        queries[str(qid)] = text
    return queries


def load_query_set(
    folder: str | os.PathLike[str], split: str = "test", *, source: str | None = None
) -> QuerySet:
    """Read ``queries.jsonl`` and ``qrels/<split>.tsv`` of a BEIR folder (no corpus needed).

    Args:
        folder: The BEIR folder.
        split: Qrels split name (``train``, ``dev``, ``test``...).
        source: What reports call the set (default: ``"<folder> qrels/<split>"``).

    Returns:
        The judged queries (in ``queries.jsonl`` order) and every judgment of the split.

    Raises:
        MissingSplitError: No qrels file for ``split`` (the splits present are named).
        MissingFileError: The folder or ``queries.jsonl`` does not exist.
        ValueError: Malformed lines (``file:line``), or qrels judging queries missing from
            ``queries.jsonl`` (count and examples).
    """
    qrels_path = qrels_file(folder, split)
    queries_path = _need_file(Path(folder) / "queries.jsonl")
    qrels = load_qrels(qrels_path)
    all_queries = load_queries(queries_path)
    unknown = [q for q in qrels if q not in all_queries]
    if unknown:
        raise ValueError(
            f"{qrels_path} judges {len(unknown)} queries missing from {queries_path} (e.g. "
            f"{_examples(unknown)}); add them to queries.jsonl or drop their qrels rows."
        )
    queries = {q: text for q, text in all_queries.items() if q in qrels}
    name = f"{folder} qrels/{split}" if source is None else source
    return QuerySet(queries, qrels, name)


def load_beir(folder: str | os.PathLike[str], split: str = "test") -> BeirData:
    """Load ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from a folder.

    Returns:
        The whole corpus, and the queries judged in ``split`` with their judgments.

    Raises:
        MissingSplitError: No qrels file for ``split`` (the splits present are named).
        MissingFileError: The folder, ``corpus.jsonl`` or ``queries.jsonl`` does not exist.
        ValueError: Malformed lines (``file:line``), or qrels judging unknown queries.
    """
    qrels_file(folder, split)  # the cheap checks first, before reading anything
    corpus_path = _need_file(Path(folder) / "corpus.jsonl")
    query_set = load_query_set(folder, split)
    corpus = [p for _, p in iter_jsonl_corpus(corpus_path)]
    logger.info("%s: %d passages, %d judged queries", folder, len(corpus), len(query_set.qrels))
    return BeirData(corpus, query_set.queries, query_set.qrels)
