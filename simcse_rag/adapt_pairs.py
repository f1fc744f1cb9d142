"""Training pairs of a domain adaptation: made or checked, kept apart from evaluation, sampled.

:func:`simcse_rag.adapt.prepare_pairs` composes these, the held-out split (:func:`hold_out`)
included.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simcse_rag.adapt_config import AdaptConfig
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
