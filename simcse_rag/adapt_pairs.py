"""Training pairs of a domain adaptation: made or checked, kept apart from evaluation, sampled.

:func:`prepare_pairs` (stage 1 of :func:`simcse_rag.adapt.adapt`) composes these, the held-out
split (:func:`hold_out`) included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simcse_rag.adapt_config import AdaptConfig
from simcse_rag.adapt_questions import QuestionPairs
from simcse_rag.datasets import QuerySet as EvalSet
from simcse_rag.pairs import TrainingPair, split_queries
from simcse_rag.pseudo_queries import is_pseudo_query, make_pseudo_queries
from simcse_rag.schema import Passage

#: Pseudo-queries alone gained little on held-out real questions (docs/benchmarks.md,
#: "corpus-only"), so corpus-only adaptation needs an explicit strategy; the message names the
#: three sources of real questions first.
CORPUS_ONLY_REFUSAL = (
    "No labelled pairs given. Give labelled pairs (--pairs FILE or --train-data BEIR_DIR), "
    "your users' questions without labels (--queries FILE, e.g. simcse-rag adapt --corpus "
    "docs.jsonl --queries questions.txt --out adapted), or an LLM that writes questions "
    "(--generator-url URL --generator-model NAME); corpus-only --strategy "
    "keywords|title|ict|crop is opt-in, check it on real queries with --eval-data."
)


def training_pairs(
    corpus: Sequence[Passage],
    config: AdaptConfig,
    pairs: Sequence[TrainingPair] | None,
    pairs_source: str = "",
) -> tuple[list[TrainingPair], str]:
    """The caller's pairs (checked against the corpus) or pseudo-queries, and their source.

    Args:
        corpus: The passages.
        config: Settings (``strategy``, ``max_pairs``, ``seed`` for pseudo-queries).
        pairs: Labelled pairs; ``None`` makes pseudo-queries with ``config.strategy``.
        pairs_source: Description of ``pairs`` for the report.

    Raises:
        ValueError: No pairs and ``strategy="auto"`` (:data:`CORPUS_ONLY_REFUSAL`), an empty
            ``pairs``, or pairs naming passages that are not in the corpus.
    """
    if pairs is None:
        if config.strategy == "auto":
            raise ValueError(CORPUS_ONLY_REFUSAL)
        made = make_pseudo_queries(
            corpus, strategy=config.strategy, max_pairs=config.max_pairs, seed=config.seed
        )
        return made, f"pseudo-queries ({config.strategy}) from the corpus"
    train = list(pairs)
    if not train:
        raise ValueError("No training pairs given.")
    unknown = sorted({p.positive_id for p in train if p.positive_id} - {p.id for p in corpus})
    if unknown:
        raise ValueError(
            f"{len(unknown)} training pairs name passages that are not in the corpus "
            f"(e.g. {unknown[:5]}); is --corpus the matching corpus?"
        )
    return train, pairs_source or "labelled pairs"


def check_eval_set(eval_set: EvalSet, corpus_ids: set[str]) -> None:
    """Refuse evaluation queries that cannot be scored on this corpus.

    Raises:
        ValueError: Judgments of unknown queries, no judgment naming a corpus passage, or
            empty query texts.
    """
    missing_q = sorted(set(eval_set.qrels) - set(eval_set.queries))
    if missing_q:
        raise ValueError(
            f"{len(missing_q)} evaluation qrels name unknown queries (e.g. {missing_q[:5]})."
        )
    judged = {d for docs in eval_set.qrels.values() for d in docs}
    if not judged & corpus_ids:
        raise ValueError(
            "No evaluation judgment names a corpus passage; is --eval-data for this --corpus?"
        )
    empty = sorted(q for q in eval_set.qrels if not eval_set.queries[q].strip())
    if empty:
        raise ValueError(f"{len(empty)} evaluation queries are empty (e.g. {empty[:5]}).")


def without_eval_queries(pairs: list[TrainingPair], eval_set: EvalSet) -> list[TrainingPair]:
    """``pairs`` less those of an evaluation query, by id or by (normalised) text.

    A query of the evaluation set must never be trained on.
    """
    held_texts = {" ".join(t.split()).lower() for t in eval_set.queries.values()}
    return [
        p
        for p in pairs
        if p.query_id not in eval_set.qrels and " ".join(p.query.split()).lower() not in held_texts
    ]


def pairs_to_eval_set(pairs: Sequence[TrainingPair], source: str) -> EvalSet:
    """Turn held-out pairs into an :class:`EvalSet` (pairs without a corpus id are dropped)."""
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for p in pairs:
        if p.positive_id:
            queries[p.query_id] = p.query
            qrels.setdefault(p.query_id, {})[p.positive_id] = 1
    if not qrels:
        raise ValueError(
            "No held-out pair names a corpus passage, so nothing can be evaluated; give "
            "--eval-data or pairs whose passages are in the corpus."
        )
    return EvalSet(queries, qrels, source)


def hold_out(
    pairs: Sequence[TrainingPair], *, eval_fraction: float, seed: int, source: str
) -> tuple[list[TrainingPair], EvalSet]:
    """Split pairs by query into training pairs and a held-out :class:`EvalSet`.

    Pseudo-queries are grouped by their source passage instead, so that no passage seen in
    training (under any strategy) is evaluated.
    """

    def group(p: TrainingPair) -> str:
        return f"passage:{p.positive_id}" if is_pseudo_query(p) else p.query_id

    train_ids, eval_ids = split_queries(
        {group(p) for p in pairs}, eval_fraction=eval_fraction, seed=seed
    )
    keep = set(train_ids)
    held = set(eval_ids)
    return [p for p in pairs if group(p) in keep], pairs_to_eval_set(
        [p for p in pairs if group(p) in held], f"{source} (held-out queries, seed {seed})"
    )


def sample_pairs(pairs: list[TrainingPair], limit: int, seed: int) -> list[TrainingPair]:
    """At most ``limit`` of ``pairs``: a seeded sample in their original order.

    Args:
        pairs: The pairs.
        limit: Most pairs kept; ``pairs`` itself is returned when it has no more.
        seed: Seed of the sample (the same seed gives the same pairs).
    """
    if len(pairs) <= limit:
        return pairs
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(pairs), size=limit, replace=False))
    return [pairs[i] for i in keep]


@dataclass(frozen=True)
class PreparedPairs:
    """What :func:`prepare_pairs` returns.

    Attributes:
        train: Training pairs, none of them an evaluation query; at most ``max_pairs``.
        eval_set: The held-out evaluation queries.
        source: Where the training pairs come from (for the report).
        pseudo: Every pair is a pseudo-query (ours, or made by the caller such as the demo):
            pseudo-query defaults apply, and negatives take their positives' form.
        pseudo_eval: The evaluation queries are held-back pseudo-queries (no labels anywhere).
        questions: How the pairs were made from questions without labels (``None`` otherwise).
        silver_eval: The evaluation queries are held-back questions labelled by the base
            retriever itself (no ``eval_set`` given with ``queries=`` / ``generated=``).
    """

    train: list[TrainingPair]
    eval_set: EvalSet
    source: str
    pseudo: bool
    pseudo_eval: bool
    questions: QuestionPairs | None = None
    silver_eval: bool = False


def prepare_pairs(
    corpus: Sequence[Passage],
    config: AdaptConfig,
    pairs: Sequence[TrainingPair] | None = None,
    *,
    pairs_source: str = "",
    eval_set: EvalSet | None = None,
    questions: QuestionPairs | None = None,
) -> PreparedPairs:
    """Training pairs and held-out evaluation queries (stage 1 of :func:`adapt`).

    Args:
        corpus: The passages (ids unique).
        config: Settings (strategy, ``max_pairs``, ``eval_fraction``, seed).
        pairs: Labelled pairs; ``None`` makes pseudo-queries from the corpus.
        pairs_source: Description of ``pairs`` for the report.
        eval_set: Held-out queries; ``None`` holds back ``config.eval_fraction`` of the pairs'
            queries.
        questions: What :func:`~simcse_rag.adapt_questions.pairs_from_questions` made
            ``pairs`` from, when it did (for the report).

    Raises:
        ValueError: No pairs and ``strategy="auto"``, pairs naming passages outside the corpus,
            an evaluation set that does not fit the corpus, or fewer than 2 pairs left.
    """
    train, source = training_pairs(corpus, config, pairs, pairs_source)
    pseudo = all(map(is_pseudo_query, train))
    pseudo_eval = pseudo and eval_set is None
    silver_eval = questions is not None and eval_set is None
    if eval_set is None:
        train, eval_set = hold_out(
            train, eval_fraction=config.eval_fraction, seed=config.seed, source=source
        )
    else:
        check_eval_set(eval_set, {p.id for p in corpus})
        train = without_eval_queries(train, eval_set)
    train = sample_pairs(train, config.max_pairs, config.seed)
    if len(train) < 2:
        raise ValueError(
            f"Only {len(train)} training pair(s) left after holding out evaluation "
            "queries; give more pairs or a separate --eval-data."
        )
    return PreparedPairs(
        train,
        eval_set,
        source,
        pseudo=pseudo,
        pseudo_eval=pseudo_eval,
        questions=questions,
        silver_eval=silver_eval,
    )
