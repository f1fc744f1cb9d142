"""Training pairs from questions without labels: label them, or check generated ones.

Two routes of :func:`simcse_rag.adapt.adapt` start from questions nobody linked to a passage:

* **question logs** (``queries=``, ``--queries``): :func:`label_queries` labels each question
  with the base hybrid retriever's top passage and keeps it only when a confidence rule
  (:class:`LabelRule`) trusts that label;
* **generated questions** (``generated=``, ``--generator-url``): each candidate pair names the
  passage its question was written from; :func:`round_trip_filter` keeps it only when that
  passage ranks within the top ``k`` of a hybrid retriever for the question (Promptagator's
  round-trip consistency, Dai et al. 2022, https://arxiv.org/abs/2209.11755); by default the
  retriever of a model trained on the candidates (:mod:`simcse_rag.adapt_round_trip`).

Both return the kept :class:`~simcse_rag.pairs.TrainingPair` list and a count per outcome (for
the report); the rest of adaptation (hold-out, mining, training, merge) treats the kept pairs
like labelled ones. The rule and ``k`` were chosen on held-out real questions
(docs/benchmarks.md, "Adapting from questions without labels").
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simcse_rag import _validate
from simcse_rag.pairs import TrainingPair

if TYPE_CHECKING:
    from simcse_rag.datasets import QuerySet as EvalSet

logger = logging.getLogger(__name__)

#: Questions searched per batch (bounds the memory of one batch of hits).
SEARCH_BATCH = 256
#: Prefix of the query ids :func:`label_queries` gives (a hash of the question text follows).
QUERY_ID_PREFIX = "q:"

#: A round-trip filter: candidate pairs -> the kept pairs and the counts of
#: :func:`round_trip_filter` (:class:`simcse_rag.adapt_round_trip.TrainedRoundTrip` is one).
RoundTrip = Callable[[Sequence[TrainingPair]], tuple[list[TrainingPair], dict[str, int]]]


@dataclass(frozen=True)
class LabelRule:
    """When :func:`label_queries` trusts the hybrid retriever's top passage as a question's label.

    Attributes:
        max_leg_rank: The top passage must rank within this many of both the dense and the BM25
            ranking (1: dense and BM25 agree on it); ``None`` checks neither.
        min_margin: Smallest relative margin of the top fused score over the second,
            ``(s1 - s2) / s1``; 0 checks none.
        max_dense_rank: Limit for the dense leg alone; ``None`` takes ``max_leg_rank``.
        max_bm25_rank: Limit for the BM25 leg alone; ``None`` takes ``max_leg_rank``.
    """

    max_leg_rank: int | None = 1
    min_margin: float = 0.0
    max_dense_rank: int | None = None
    max_bm25_rank: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_leg_rank", "max_dense_rank", "max_bm25_rank"):
            rank = _validate.optional_positive_int(getattr(self, name), f"LabelRule.{name}")
            object.__setattr__(self, name, rank)  # numpy integers stored as int
        if not 0.0 <= self.min_margin < 1.0:
            raise ValueError(f"LabelRule.min_margin must be in [0, 1), got {self.min_margin!r}.")

    def trusts(self, hits: Sequence[Any]) -> bool:
        """Whether the top hit of a hybrid search (hits best first) is a trusted label."""
        if not hits:
            return False
        top = hits[0]
        for leg, limit in self.leg_limits().items():
            source = top.sources.get(leg)
            if source is None or source.rank > limit:
                return False
        return relative_margin(hits) >= self.min_margin

    def leg_limits(self) -> dict[str, int]:
        """Leg (``dense`` / ``bm25``) -> the rank its top passage must reach (checked legs only)."""
        limits = {"dense": self.max_dense_rank, "bm25": self.max_bm25_rank}
        resolved = {leg: self.max_leg_rank if v is None else v for leg, v in limits.items()}
        return {leg: v for leg, v in resolved.items() if v is not None}


#: The rule ``adapt`` labels questions with: the hybrid's top passage is kept when BM25 also ranks
#: it first and dense ranks it within its top 10. Requiring dense to rank it first too keeps only
#: labels the dense model already ranks first, so it has nothing to learn from them; not checking
#: dense at all lifted label precision on TAT-QA but hardly on LiveQA, where dense is the
#: stronger leg. Chosen leaving one dataset out (docs/benchmarks.md, "labels from the BM25 leg"
#: and "the label rule left one dataset out").
DEFAULT_LABEL_RULE = LabelRule(max_leg_rank=None, max_bm25_rank=1, max_dense_rank=10)


def relative_margin(hits: Sequence[Any]) -> float:
    """``(s1 - s2) / s1`` of the two best fused scores (1.0 with a single hit, 0 with none)."""
    if not hits or hits[0].score <= 0:
        return 0.0
    if len(hits) == 1:
        return 1.0
    return (hits[0].score - hits[1].score) / hits[0].score


def normalize_question(text: str) -> str:
    """Whitespace collapsed, lower case: two questions equal under it are duplicates."""
    return " ".join(text.split()).lower()


def question_id(text: str) -> str:
    """Stable id of a question: the same text gets the same id in every run."""
    digest = hashlib.sha1(normalize_question(text).encode("utf-8")).hexdigest()
    return f"{QUERY_ID_PREFIX}{digest[:16]}"


def unique_questions(questions: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    """The questions stripped, blank ones and repeats (after normalising) dropped and counted.

    Returns:
        The questions kept (first occurrence, in order) and the counts ``given``, ``blank``,
        ``duplicates``.
    """
    seen: set[str] = set()
    kept: list[str] = []
    counts = {"given": 0, "blank": 0, "duplicates": 0}
    for text in questions:
        counts["given"] += 1
        if not isinstance(text, str):
            raise TypeError(f"questions must be strings, got {type(text).__name__}.")
        key = normalize_question(text)
        if not key:
            counts["blank"] += 1
        elif key in seen:
            counts["duplicates"] += 1
        else:
            seen.add(key)
            kept.append(" ".join(text.split()))
    return kept, counts


def _search(retriever: Any, texts: Sequence[str], k: int) -> list[list[Any]]:
    hits: list[list[Any]] = []
    for start in range(0, len(texts), SEARCH_BATCH):
        batch = list(texts[start : start + SEARCH_BATCH])
        hits.extend(retriever.search_batch(batch, k=k, mode="hybrid"))
    return hits


def label_queries(
    retriever: Any, questions: Iterable[str], rule: LabelRule
) -> tuple[list[TrainingPair], dict[str, int]]:
    """Label each question with the hybrid retriever's top passage; keep those ``rule`` trusts.

    Args:
        retriever: A :class:`~simcse_rag.index.hybrid.HybridRetriever` over the corpus (the
            base model's).
        questions: Question texts (blank ones and repeats are dropped and counted).
        rule: When a label is trusted.

    Returns:
        One pair per kept question (id :func:`question_id`, positive the top passage) and the
        counts ``given``, ``blank``, ``duplicates``, ``untrusted`` (dropped by the rule) and
        ``kept``.
    """
    texts, counts = unique_questions(questions)
    pairs: list[TrainingPair] = []
    untrusted = 0
    for text, hits in zip(texts, _search(retriever, texts, k=2), strict=True):
        if not rule.trusts(hits):
            untrusted += 1
            continue
        top = retriever.get(hits[0].id)
        pairs.append(TrainingPair(question_id(text), text, top.text, top.id))
    counts.update(untrusted=untrusted, kept=len(pairs))
    logger.info("labelled questions: %s", counts)
    return pairs, counts


def checkable_pairs(retriever: Any, pairs: Sequence[TrainingPair]) -> list[TrainingPair]:
    """The pairs whose ``positive_id`` names a passage of ``retriever``'s corpus (only those can
    come back in a search)."""
    return [p for p in pairs if p.positive_id and p.positive_id in retriever]


def round_trip_filter(
    retriever: Any, pairs: Sequence[TrainingPair], k: int
) -> tuple[list[TrainingPair], dict[str, int]]:
    """Keep the pairs whose passage ranks within the top ``k`` of a hybrid search for the query.

    Args:
        retriever: A :class:`~simcse_rag.index.hybrid.HybridRetriever` over the corpus.
        pairs: Candidate pairs; ``positive_id`` names the passage the question was made from.
        k: Rank within which the passage must come back.

    Returns:
        The kept pairs (in order) and the counts ``given``, ``no_passage_id`` (a positive that
        is not a corpus passage cannot be checked), ``missed`` (the passage ranked below ``k``)
        and ``kept``.

    Raises:
        ValueError: ``k`` < 1.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"round-trip k must be a positive integer, got {k!r}.")
    checkable = checkable_pairs(retriever, pairs)
    texts = list(dict.fromkeys(p.query for p in checkable))
    found = {
        text: {h.id for h in hits}
        for text, hits in zip(texts, _search(retriever, texts, k=k), strict=True)
    }
    kept = [p for p in checkable if p.positive_id in found[p.query]]
    counts = {
        "given": len(pairs),
        "no_passage_id": len(pairs) - len(checkable),
        "missed": len(checkable) - len(kept),
        "kept": len(kept),
    }
    logger.info("round-trip filter (k=%d): %s", k, counts)
    return kept, counts


@dataclass(frozen=True)
class QuestionPairs:
    """Pairs made from questions without labels, and what became of the questions.

    Attributes:
        pairs: The kept pairs (labelled questions, then generated pairs that passed).
        source: Where the pairs came from (for the report).
        filters: Route (``queries`` / ``generated``) -> the counts of :func:`label_queries` or
            :func:`round_trip_filter`.
        label_precision: For ``queries``, how many kept questions the evaluation set judges and
            how many of their labels it calls relevant (``None`` when it judges none).
    """

    pairs: list[TrainingPair]
    source: str
    filters: dict[str, dict[str, int]] = field(default_factory=dict)
    label_precision: dict[str, float] | None = None


def pairs_from_questions(
    retriever: Any,
    *,
    queries: Sequence[str] | Mapping[str, str] | None,
    generated: Sequence[TrainingPair] | None,
    rule: LabelRule,
    round_trip_k: int,
    eval_set: EvalSet | None = None,
    min_pairs: int = 1,
    round_trip: RoundTrip | None = None,
) -> QuestionPairs:
    """Training pairs from question logs and/or generated questions (stage 1 of adaptation).

    Args:
        retriever: The corpus indexed with the base model.
        queries: Questions without labels; a mapping keeps its ids as query ids (so an
            evaluation set can match them by id as well as by text).
        generated: Candidate pairs naming the passage each question was made from.
        rule: Confidence rule of the labels of ``queries``.
        round_trip_k: Rank within which a generated question's passage must come back.
        eval_set: Evaluation queries; when they judge some labelled questions, the share of
            those labels they call relevant is the label-precision estimate.
        min_pairs: Fewest kept pairs worth training on: a handful of trusted questions
            lowered every dense metric however briefly it was trained (docs/benchmarks.md,
            "Adapting from questions without labels").
        round_trip: Filters the generated pairs; ``None``: :func:`round_trip_filter` with
            ``retriever`` (the base model).

    Raises:
        ValueError: Fewer than ``min_pairs`` pairs kept.
    """
    pairs: list[TrainingPair] = []
    filters: dict[str, dict[str, int]] = {}
    sources: list[str] = []
    precision = None
    if queries is not None:
        ids = _given_ids(queries)
        texts = list(queries.values()) if isinstance(queries, Mapping) else list(queries)
        labelled, filters["queries"] = label_queries(retriever, texts, rule)
        labelled = [_with_id(p, ids.get(normalize_question(p.query))) for p in labelled]
        precision = label_precision(labelled, eval_set) if eval_set is not None else None
        pairs += labelled
        sources.append(f"questions labelled by the base retriever ({describe_rule(rule)})")
    if generated is not None:
        # One id per question text, so a question made from two passages is held out whole.
        renamed = [_with_id(p, question_id(p.query)) for p in generated]
        if round_trip is None:
            kept, counts = round_trip_filter(retriever, renamed, round_trip_k)
        else:
            kept, counts = round_trip(renamed)
        filters["generated"] = counts
        pairs += kept
        by = "a model trained on them" if counts.get("filter_trained_on") else "the base model"
        sources.append(
            f"generated questions kept by the round-trip filter (top {round_trip_k}, {by})"
        )
    if len(pairs) < max(1, min_pairs):
        kept = "No question was kept" if not pairs else f"Only {len(pairs)} pairs were kept"
        raise ValueError(
            f"{kept} ({_counts_text(filters)}); adapting needs at least {max(1, min_pairs)} "
            "(one batch); give more questions, or labelled pairs with --pairs/--train-data."
        )
    return QuestionPairs(pairs, "; ".join(sources), filters, precision)


def _counts_text(filters: Mapping[str, Mapping[str, int]]) -> str:
    return "; ".join(
        f"{route}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        for route, counts in filters.items()
    )


def describe_rule(rule: LabelRule) -> str:
    """The rule in words, for the report."""
    parts = []
    limits = rule.leg_limits()
    names = {"dense": "dense", "bm25": "BM25"}
    if len(limits) == 2 and limits["dense"] == limits["bm25"] == 1:
        parts.append("dense and BM25 agree on the top passage")
    elif len(limits) == 2 and limits["dense"] == limits["bm25"]:
        parts.append(f"the top passage is in the top {limits['dense']} of dense and of BM25")
    else:
        parts += [
            f"the top passage is {names[leg]}'s top passage"
            if limit == 1
            else f"the top passage is in {names[leg]}'s top {limit}"
            for leg, limit in limits.items()
        ]
    if rule.min_margin > 0:
        parts.append(f"fused-score margin over the second >= {rule.min_margin:g}")
    return "kept when " + " and ".join(parts) if parts else "every top passage kept"


def label_precision(pairs: Sequence[TrainingPair], eval_set: EvalSet) -> dict[str, float] | None:
    """How many labelled pairs ``eval_set`` judges (by query id or text) and the share right.

    Returns:
        ``{"judged", "correct", "precision"}``, or ``None`` when it judges none of them.
    """
    by_text = {normalize_question(t): q for q, t in eval_set.queries.items()}
    judged = correct = 0
    for p in pairs:
        qid = p.query_id
        if qid not in eval_set.qrels:
            qid = by_text.get(normalize_question(p.query))
        if qid is None or qid not in eval_set.qrels:
            continue
        judged += 1
        correct += eval_set.qrels[qid].get(p.positive_id, 0) >= 1
    if not judged:
        return None
    return {"judged": judged, "correct": correct, "precision": round(correct / judged, 4)}


def _given_ids(queries: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    ids: dict[str, str] = {}
    if isinstance(queries, Mapping):
        for q, t in queries.items():  # a repeated text keeps its first id, as its pair does
            if isinstance(t, str):
                ids.setdefault(normalize_question(t), str(q))
    return ids


def _with_id(pair: TrainingPair, query_id: str | None) -> TrainingPair:
    if query_id is None or query_id == pair.query_id:
        return pair
    return TrainingPair(query_id, pair.query, pair.positive, pair.positive_id)


def read_questions(path: str | os.PathLike[str]) -> list[str] | dict[str, str]:
    """Questions without labels from a file: ``.jsonl`` is a BEIR ``queries.jsonl`` (ids kept),
    anything else one question per line.

    Raises:
        FileNotFoundError: No such file.
        ValueError: A binary or non-UTF-8 file, a malformed JSONL line (named), or no question
            (empty, or only blank lines).
    """
    from simcse_rag.datasets import load_queries

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Questions file {str(path)!r} not found.")
    raw = path.read_bytes()
    try:
        if b"\x00" in raw:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL byte")
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(
            f"--queries {str(path)!r} is not a UTF-8 text file; give one question per line "
            "(.txt) or a BEIR queries.jsonl."
        ) from None
    questions: list[str] | dict[str, str]
    if path.suffix.lower() == ".jsonl":
        questions = load_queries(path)
        found = any(t.strip() for t in questions.values())
    else:
        questions = [line for line in text.splitlines() if line.strip()]
        found = bool(questions)
    if not found:
        raise ValueError(
            f"--queries {str(path)!r} holds no questions (empty or only blank lines); write one "
            "question per line."
        )
    return questions
