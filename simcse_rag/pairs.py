"""Training pairs for domain adaptation: (query, positive passage) from what the user has.

Two kinds of labelled input are read here (pseudo-queries made from the corpus alone live in
:mod:`simcse_rag.pseudo_queries`):

* a BEIR folder (read by :mod:`simcse_rag.datasets`): ``queries.jsonl`` plus
  ``qrels/<split>.tsv`` (``query-id corpus-id score``); every judged document with
  ``score >= min_score`` becomes a positive of its query;
* a TSV file ``query<TAB>positive passage text`` (an optional header ``query<TAB>passage_id``
  switches the second column to corpus ids).

Unknown ids are counted and named (first examples) in one error, so a user fixes the file once.
:func:`split_queries` holds queries back for evaluation, deterministically by seed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from simcse_rag.datasets import load_queries, load_query_set
from simcse_rag.schema import Passage

#: How many unknown ids an error message shows.
_EXAMPLES = 5


@dataclass(frozen=True)
class TrainingPair:
    """A query and one passage that answers it.

    Attributes:
        query_id: Id of the query (pairs of the same query share it).
        query: Query text.
        positive: Text of the positive passage used for training.
        positive_id: Corpus id of the positive, or ``""`` when it is not a corpus passage.
    """

    query_id: str
    query: str
    positive: str
    positive_id: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.query, str) or not self.query.strip():
            raise ValueError(f"Query {self.query_id!r} is empty; remove it or give it text.")
        if not isinstance(self.positive, str) or not self.positive.strip():
            raise ValueError(f"Query {self.query_id!r} has an empty positive passage.")


def _unknown_error(what: str, unknown: Sequence[str], total: int, source: object, fix: str) -> str:
    shown = ", ".join(repr(u) for u in list(dict.fromkeys(unknown))[:_EXAMPLES])
    return f"{len(unknown)} of {total} pairs in {source} name unknown {what} (e.g. {shown}); {fix}."


def read_jsonl_texts(path: Path, *, what: str = "query") -> dict[str, str]:
    """Read ``{_id: text}`` from a BEIR ``queries.jsonl`` (errors name the line).

    The older name of :func:`simcse_rag.datasets.load_queries`, kept for existing callers;
    ``what`` is no longer used.
    """
    del what
    return load_queries(path)


def pairs_from_beir(
    folder: str | os.PathLike[str],
    split: str,
    corpus: Mapping[str, Passage],
    *,
    min_score: int = 1,
    query_ids: Iterable[str] | None = None,
) -> list[TrainingPair]:
    """Labelled pairs from a BEIR folder's queries and qrels split.

    Args:
        folder: Folder holding ``queries.jsonl`` and ``qrels/<split>.tsv``.
        split: Qrels split name (``train``, ``dev``, ``test``...).
        corpus: The corpus the qrels point into, by id.
        min_score: Qrels grade from which a document counts as relevant.
        query_ids: Only these queries (e.g. the training side of :func:`split_queries`).

    Returns:
        One pair per (query, relevant document), in qrels order.

    Raises:
        MissingSplitError: No qrels file for ``split`` (the splits present are named); it is a
            ``FileNotFoundError`` and a ``ValueError``.
        MissingFileError: The folder or ``queries.jsonl`` does not exist.
        ValueError: Malformed lines, qrels naming unknown query ids, unknown corpus ids (count
            and examples), empty queries, no pairs.
    """
    query_set = load_query_set(folder, split)
    queries, qrels = query_set.queries, query_set.qrels
    queries_path = Path(folder) / "queries.jsonl"
    qrels_path = Path(folder) / "qrels" / f"{split}.tsv"
    keep = None if query_ids is None else set(query_ids)
    rows = [
        (qid, did)
        for qid, docs in qrels.items()
        if keep is None or qid in keep
        for did, grade in docs.items()
        if grade >= min_score
    ]
    unknown_d = [did for _, did in rows if did not in corpus]
    if unknown_d:
        raise ValueError(
            _unknown_error(
                "corpus ids",
                unknown_d,
                len(rows),
                qrels_path,
                "check that --corpus is the corpus these qrels point into",
            )
        )
    empty = sorted({qid for qid, _ in rows if not queries[qid].strip()})
    if empty:
        raise ValueError(
            f"{len(empty)} queries in {queries_path} are empty (e.g. {empty[:_EXAMPLES]}); "
            "give them text or drop their qrels."
        )
    if not rows:
        raise ValueError(f"{qrels_path} has no pairs with score >= {min_score}.")
    return [TrainingPair(qid, queries[qid], corpus[did].text, did) for qid, did in rows]


def pairs_from_tsv(
    path: str | os.PathLike[str], corpus: Mapping[str, Passage]
) -> list[TrainingPair]:
    """Labelled pairs from ``query<TAB>positive passage`` lines.

    A first line ``query<TAB>passage_id`` (or ``corpus-id``) makes the second column corpus ids;
    otherwise it is passage text, linked to a corpus id when the text matches a passage exactly.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: A line without a tab or with an empty side (its line number is named),
            unknown corpus ids (count and examples), or no pairs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Pairs file {path} not found.")
    by_text = {_norm(p.text): p.id for p in corpus.values()}
    pairs: list[TrainingPair] = []
    unknown: list[str] = []
    by_id = False
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            head = [p.strip().lower() for p in parts]
            if lineno == 1 and head[0] in {"query", "anchor", "question"}:
                by_id = len(head) > 1 and head[1] in {"passage_id", "corpus-id", "corpus_id", "id"}
                continue
            if len(parts) < 2:
                raise ValueError(f"{path}:{lineno}: expected 'query<TAB>positive passage'.")
            query, second = parts[0].strip(), parts[1].strip()
            if not query:
                raise ValueError(f"{path}:{lineno}: the query is empty.")
            if not second:
                raise ValueError(f"{path}:{lineno}: the positive passage is empty.")
            qid = f"line{lineno}"
            if by_id:
                if second not in corpus:
                    unknown.append(second)
                    continue
                pairs.append(TrainingPair(qid, query, corpus[second].text, second))
            else:
                pairs.append(TrainingPair(qid, query, second, by_text.get(_norm(second), "")))
    if unknown:
        raise ValueError(
            _unknown_error("corpus ids", unknown, len(unknown) + len(pairs), path, "check --corpus")
        )
    if not pairs:
        raise ValueError(f"{path} holds no pairs; write one 'query<TAB>passage' per line.")
    return _merge_query_ids(pairs)


def _merge_query_ids(pairs: list[TrainingPair]) -> list[TrainingPair]:
    """Give identical query texts one id, so held-out splits keep a query's pairs together."""
    first: dict[str, str] = {}
    return [
        TrainingPair(first.setdefault(p.query, p.query_id), p.query, p.positive, p.positive_id)
        for p in pairs
    ]


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def split_queries(
    query_ids: Iterable[str], *, eval_fraction: float, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split query ids into (train, held-out) deterministically.

    Each id is ranked by a hash of ``(seed, id)``, so the split does not depend on input order.

    Args:
        query_ids: Query ids (duplicates ignored).
        eval_fraction: Share of queries held out, in (0, 1).
        seed: Changes which queries are held out.

    Returns:
        ``(train_ids, eval_ids)``, each sorted.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction!r}.")
    ids = sorted(set(query_ids))
    if len(ids) < 2:
        raise ValueError(f"Need at least 2 distinct queries to hold some back, got {len(ids)}.")
    ranked = sorted(ids, key=lambda q: hashlib.sha1(f"{seed}\x00{q}".encode()).hexdigest())
    n_eval = min(len(ids) - 1, max(1, round(len(ids) * eval_fraction)))
    return sorted(ranked[n_eval:]), sorted(ranked[:n_eval])
