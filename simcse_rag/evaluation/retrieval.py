"""Retrieval metrics (nDCG@k, Recall@k, MRR@k) over BEIR-layout data.

Definitions follow BEIR / pytrec_eval: nDCG uses linear gains (the qrels grade) with a
``log2(rank + 1)`` discount, the ideal ranking taken from all judged documents; Recall@k and
MRR@k count a document as relevant when its grade is >= 1. Only queries with at least one
relevant document are evaluated; a query missing from the run scores 0.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simcse_rag import _io
from simcse_rag.corpus import iter_jsonl_corpus
from simcse_rag.schema import Passage

Qrels = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class BeirData:
    """A BEIR-layout retrieval set.

    Attributes:
        corpus: Passages (``text`` = title + newline + text when there is a title).
        queries: Query id -> text, restricted to queries judged in the split.
        qrels: Query id -> {doc id: grade}.
    """

    corpus: list[Passage]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)


def load_qrels(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (``query-id  corpus-id  score`` with a header line).

    Raises:
        ValueError: Missing file or a malformed row (its line number is named).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"qrels file {str(path)!r} does not exist.")
    qrels: dict[str, dict[str, int]] = {}
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t")
            for lineno, row in enumerate(reader, start=1):
                if not row or (
                    lineno == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid")
                ):
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


def load_beir(path: str | os.PathLike[str], split: str = "test") -> BeirData:
    """Load ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from a folder.

    Raises:
        ValueError: Missing files (the available splits are listed), malformed lines, or qrels
            naming queries that do not exist.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"BEIR folder {str(folder)!r} does not exist.")
    qrels_file = folder / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise ValueError(f"No qrels for split {split!r} in {folder}; available splits: {splits}.")
    qrels = load_qrels(qrels_file)
    if not (folder / "corpus.jsonl").is_file() or not (folder / "queries.jsonl").is_file():
        raise ValueError(f"{folder} needs corpus.jsonl and queries.jsonl (BEIR layout).")
    corpus = [p for _, p in iter_jsonl_corpus(folder / "corpus.jsonl")]
    all_queries: dict[str, str] = {}
    for lineno, obj in _io.iter_jsonl(folder / "queries.jsonl"):
        qid, text = obj.get("_id"), obj.get("text")
        if not isinstance(qid, (str, int)) or not isinstance(text, str):
            raise ValueError(f"{folder / 'queries.jsonl'}:{lineno}: needs string '_id' and 'text'.")
        all_queries[str(qid)] = text
    unknown = [q for q in qrels if q not in all_queries]
    if unknown:
        raise ValueError(
            f"qrels name {len(unknown)} queries missing from queries.jsonl, e.g. {unknown[0]!r}."
        )
    queries = {q: all_queries[q] for q in all_queries if q in qrels}
    return BeirData(corpus=corpus, queries=queries, qrels=qrels)


def _relevant(judged: Mapping[str, int]) -> set[str]:
    return {d for d, g in judged.items() if g >= 1}


def ndcg_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranking given graded judgments (linear gain, log2 discount)."""
    dcg = sum(max(judged.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Fraction of the relevant documents (grade >= 1) found in the top ``k``."""
    relevant = _relevant(judged)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document within the top ``k`` (0 if none)."""
    relevant = _relevant(judged)
    for i, d in enumerate(ranking[:k]):
        if d in relevant:
            return 1.0 / (i + 1)
    return 0.0


_METRICS = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k}


def evaluate_run(
    run: Mapping[str, Sequence[str]],
    qrels: Qrels,
    ks: Iterable[int] = (10, 100),
    metrics: Iterable[str] = ("ndcg", "recall", "mrr"),
) -> dict[str, float]:
    """Average metrics over the judged queries that have a relevant document.

    Args:
        run: Query id -> ranked doc ids (best first). Duplicate ids keep their first position.
        qrels: Query id -> {doc id: grade}.
        ks: Cut-offs.
        metrics: Any of ``ndcg``, ``recall``, ``mrr``.

    Returns:
        ``{"ndcg@10": ..., "recall@100": ..., ..., "queries": n}`` (floats, ``queries`` an int).

    Raises:
        ValueError: A cut-off <= 0, an unknown metric, or no query with a relevant document.
    """
    ks = list(ks)
    metrics = list(metrics)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"cut-off k must be a positive integer, got {k!r}.")
    for m in metrics:
        if m not in _METRICS:
            raise ValueError(f"Unknown metric {m!r}; choose from: {', '.join(_METRICS)}.")
    qids = [q for q, judged in qrels.items() if _relevant(judged)]
    if not qids:
        raise ValueError("qrels hold no query with a relevant document (grade >= 1).")
    out: dict[str, float] = {}
    rankings = {q: list(dict.fromkeys(run.get(q, ()))) for q in qids}
    for m in metrics:
        for k in ks:
            out[f"{m}@{k}"] = statistics.fmean(_METRICS[m](rankings[q], qrels[q], k) for q in qids)
    out["queries"] = len(qids)
    return out
