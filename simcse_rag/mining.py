"""Hard-negative mining with false-negative control.

For each training pair the current model and BM25 retrieve candidates (fused by RRF); a
candidate becomes a hard negative only if it survives, in this order:

1. ``positive_id``: it is not a known positive of the query (by id);
2. ``duplicate``: its text is not an exact or near-duplicate of the positive (character 4-gram
   Jaccard >= ``duplicate_threshold``; corpora often hold the same answer under several ids);
3. ``rank_window``: its fused rank lies in ``(range_min, range_max]``;
4. ``max_score``: its dense score is at most ``max_score``;
5. ``relative_margin``: its dense score is at most ``pos - |pos| * relative_margin`` where
   ``pos`` is the dense score of the query's weakest known positive (the semantics of
   sentence-transformers' ``mine_hard_negatives``: a candidate that outscores any true answer
   of the query is too likely to be an unjudged one);
6. ``not_sampled``: ``num_negatives`` are kept, the best-ranked (``top``) or a seeded random
   sample (``random``).

Filters 4-5 are the false-negative control: without them mining fills training with passages
that are actually relevant (Qu et al. 2021, RocketQA, https://arxiv.org/abs/2010.08191; Moreira
et al. 2024, NV-Retriever, https://arxiv.org/abs/2407.15831). The filter maths
(:func:`select_negatives`) works on plain arrays, so it is testable without a model.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simcse_rag import _validate
from simcse_rag.pairs import TrainingPair
from simcse_rag.schema import SEARCH_MODES

#: Filter names in the order they are applied (keys of the removal counts).
FILTERS = (
    "positive_id",
    "duplicate",
    "rank_window",
    "max_score",
    "relative_margin",
    "not_sampled",
)
SAMPLING = ("top", "random")


@dataclass(frozen=True)
class MiningConfig:
    """How hard negatives are mined.

    Attributes:
        num_negatives: Hard negatives kept per pair.
        candidates: Candidates retrieved per query from each source before fusion.
        range_min: Skip the ``range_min`` best-ranked candidates (ranks ``1..range_min``).
        range_max: Consider only candidates ranked ``<= range_max``.
        relative_margin: Drop candidates scoring above ``pos - |pos| * relative_margin``, where
            ``pos`` is the score of the query's weakest positive; ``None`` disables the filter.
        max_score: Drop candidates whose dense score exceeds it; ``None`` disables the filter.
        duplicate_threshold: Character 4-gram Jaccard from which a candidate's text counts as a
            copy of the positive (1.0: exact copies only, after whitespace/case normalisation).
        sampling: ``top`` (best-ranked survivors) or ``random`` (seeded sample of survivors).
        mode: Retrieval mode for candidates: ``hybrid`` (dense + BM25), ``dense`` or ``bm25``.
        seed: Seed for ``random`` sampling.
    """

    num_negatives: int = 3
    candidates: int = 50
    range_min: int = 0
    range_max: int = 50
    relative_margin: float | None = 0.05
    max_score: float | None = None
    duplicate_threshold: float = 0.9
    sampling: str = "top"
    mode: str = "hybrid"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_negatives", "candidates", "range_max"):
            value = _validate.positive_int(getattr(self, name), f"MiningConfig.{name}")
            object.__setattr__(self, name, value)  # plain int: a numpy integer is not JSON
        range_min = _validate.non_negative_int(self.range_min, "MiningConfig.range_min")
        object.__setattr__(self, "range_min", range_min)
        if self.range_max - self.range_min < self.num_negatives:
            raise ValueError(
                f"The rank window ({self.range_min}, {self.range_max}] holds fewer than "
                f"num_negatives={self.num_negatives} candidates; widen range_max."
            )
        if self.relative_margin is not None and not 0.0 <= self.relative_margin < 1.0:
            raise ValueError(
                f"MiningConfig.relative_margin must be in [0, 1) or None, "
                f"got {self.relative_margin!r}."
            )
        if not 0.0 < self.duplicate_threshold <= 1.0:
            raise ValueError(
                f"MiningConfig.duplicate_threshold must be in (0, 1], "
                f"got {self.duplicate_threshold!r}."
            )
        _validate.one_of(self.sampling, "MiningConfig.sampling", SAMPLING)
        _validate.one_of(self.mode, "MiningConfig.mode", SEARCH_MODES)


def _shingles(text: str, n: int = 4) -> set[str]:
    norm = " ".join(text.lower().split())
    if len(norm) <= n:
        return {norm}
    return {norm[i : i + n] for i in range(len(norm) - n + 1)}


def is_near_duplicate(a: str, b: str, threshold: float = 0.9) -> bool:
    """Whether two texts are copies up to case/whitespace (or near copies: 4-gram Jaccard)."""
    na, nb = " ".join(a.lower().split()), " ".join(b.lower().split())
    if na == nb:
        return True
    # Jaccard <= min/max of the shingle counts (~ text lengths): most pairs stop here cheaply.
    if threshold >= 1.0 or min(len(na), len(nb)) < threshold * max(len(na), len(nb)) - 4:
        return False
    sa, sb = _shingles(a), _shingles(b)
    # Jaccard <= min/max of the set sizes: skip the intersection when sizes differ too much.
    if min(len(sa), len(sb)) < threshold * max(len(sa), len(sb)):
        return False
    return len(sa & sb) >= threshold * len(sa | sb)


def select_negatives(
    ids: Sequence[str],
    scores: np.ndarray,
    ranks: np.ndarray,
    *,
    positive_ids: set[str] | frozenset[str],
    positive_score: float,
    duplicate: Sequence[bool] | np.ndarray,
    config: MiningConfig,
    rng: random.Random,
) -> tuple[list[int], Counter[str]]:
    """Apply the filters to one query's candidates.

    Args:
        ids: Candidate ids.
        scores: Their dense scores (cosine similarity to the query).
        ranks: Their 1-based ranks in the candidate list.
        positive_ids: Every known positive of the query.
        positive_score: Dense score the margin is taken from (the query's weakest positive).
        duplicate: Whether each candidate's text duplicates the positive's.
        config: Filter settings.
        rng: Random source for ``random`` sampling.

    Returns:
        Indices (into ``ids``) of the chosen negatives in rank order, and how many candidates
        each filter removed (keys of :data:`FILTERS`; a candidate is counted by the first filter
        that removes it).
    """
    scores = np.asarray(scores, dtype=np.float64)
    ranks = np.asarray(ranks)
    if not (len(ids) == len(scores) == len(ranks) == len(duplicate)):
        raise ValueError("ids, scores, ranks and duplicate must have the same length.")
    removed: Counter[str] = Counter({name: 0 for name in FILTERS})
    threshold = None
    if config.relative_margin is not None:
        threshold = positive_score - abs(positive_score) * config.relative_margin
    survivors: list[int] = []
    for i, doc_id in enumerate(ids):
        if doc_id in positive_ids:
            removed["positive_id"] += 1
        elif duplicate[i]:
            removed["duplicate"] += 1
        elif not config.range_min < ranks[i] <= config.range_max:
            removed["rank_window"] += 1
        elif config.max_score is not None and scores[i] > config.max_score:
            removed["max_score"] += 1
        elif threshold is not None and scores[i] > threshold:
            removed["relative_margin"] += 1
        else:
            survivors.append(i)
    survivors.sort(key=lambda i: (ranks[i], ids[i]))
    if config.sampling == "random" and len(survivors) > config.num_negatives:
        chosen = sorted(rng.sample(survivors, config.num_negatives), key=survivors.index)
    else:
        chosen = survivors[: config.num_negatives]
    removed["not_sampled"] += len(survivors) - len(chosen)
    return chosen, removed


@dataclass(frozen=True)
class MinedNegative:
    """One mined negative: corpus id, text, dense score and 1-based candidate rank."""

    id: str
    text: str
    score: float
    rank: int


@dataclass(frozen=True)
class MinedExample:
    """A training pair with its mined negatives."""

    query_id: str
    query: str
    positive_id: str
    positive: str
    positive_score: float
    negatives: tuple[MinedNegative, ...] = field(default_factory=tuple)


@dataclass
class MiningResult:
    """Mined examples plus what each filter removed.

    Attributes:
        examples: One per input pair, in input order (possibly with fewer negatives than asked).
        removed: Candidates removed by each filter, summed over pairs.
        candidates: Candidates examined in total.
        short: Pairs that got fewer than ``num_negatives`` negatives.
    """

    examples: list[MinedExample]
    removed: dict[str, int]
    candidates: int
    short: int

    def stats(self) -> dict[str, Any]:
        """Counts as a JSON-serialisable dict."""
        kept = sum(len(e.negatives) for e in self.examples)
        return {
            "pairs": len(self.examples),
            "candidates": self.candidates,
            "removed": dict(self.removed),
            "negatives_kept": kept,
            "pairs_short_of_negatives": self.short,
        }

    def write_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write one JSON object per example (query, positive, negatives with scores/ranks)."""
        path = Path(path)
        with path.open("w", encoding="utf-8") as fh:
            for example in self.examples:
                fh.write(json.dumps(asdict(example), ensure_ascii=False) + "\n")
        return path


#: ``search(queries) -> per query, candidate ids in rank order (best first)``.
CandidateFn = Callable[[Sequence[str]], list[list[str]]]
#: ``score(queries, ids_per_query, positives) -> (per query, dense scores of the given ids;
#: dense score of each query's positive)``; ``positives`` are ``(positive_id, positive_text)``
#: (the id is ``""`` for a positive outside the corpus, which is then encoded from its text).
ScoreFn = Callable[
    [Sequence[str], Sequence[Sequence[str]], Sequence[tuple[str, str]]],
    tuple[list[np.ndarray], np.ndarray],
]


def mine_hard_negatives(
    pairs: Sequence[TrainingPair],
    *,
    search: CandidateFn,
    score: ScoreFn,
    texts: dict[str, str],
    config: MiningConfig | None = None,
) -> MiningResult:
    """Mine hard negatives for training pairs.

    Args:
        pairs: (query, positive) pairs; pairs sharing a ``query_id`` share their positives.
        search: Candidate generator (e.g. the hybrid retriever over the current model + BM25).
        score: Dense scorer (the current model's cosine similarity).
        texts: Corpus texts by id.
        config: Mining settings (default :class:`MiningConfig`).

    Returns:
        The mined examples and the filter counts.
    """
    config = config or MiningConfig()
    rng = random.Random(config.seed)
    positives: dict[str, set[str]] = {}
    for pair in pairs:
        if pair.positive_id:
            positives.setdefault(pair.query_id, set()).add(pair.positive_id)
    unique_queries = list(dict.fromkeys(p.query for p in pairs))
    candidate_lists = dict(zip(unique_queries, search(unique_queries), strict=True))
    # One scoring call for every (query, candidate) and every positive.
    cand_lists = [candidate_lists[p.query] for p in pairs]
    cand_scores_all, pos_scores = score(
        [p.query for p in pairs], cand_lists, [(p.positive_id, p.positive) for p in pairs]
    )
    # The margin is taken from each query's weakest positive (pairs sharing a query_id).
    weakest: dict[str, float] = {}
    for pair, pos_score in zip(pairs, pos_scores, strict=True):
        weakest[pair.query_id] = min(float(pos_score), weakest.get(pair.query_id, float("inf")))
    examples: list[MinedExample] = []
    removed: Counter[str] = Counter({name: 0 for name in FILTERS})
    total = short = 0
    for pair, cand, cand_scores, pos_score in zip(
        pairs, cand_lists, cand_scores_all, pos_scores, strict=True
    ):
        cand_scores = np.asarray(cand_scores, dtype=np.float64)
        pos_score = float(pos_score)
        known = positives.get(pair.query_id, set())
        duplicate = [
            c not in known
            and is_near_duplicate(texts[c], pair.positive, config.duplicate_threshold)
            for c in cand
        ]
        chosen, counts = select_negatives(
            cand,
            cand_scores,
            np.arange(1, len(cand) + 1),
            positive_ids=known,
            positive_score=weakest[pair.query_id],
            duplicate=duplicate,
            config=config,
            rng=rng,
        )
        removed.update(counts)
        total += len(cand)
        short += len(chosen) < config.num_negatives
        negatives = tuple(
            MinedNegative(cand[i], texts[cand[i]], round(float(cand_scores[i]), 6), i + 1)
            for i in chosen
        )
        examples.append(
            MinedExample(
                pair.query_id, pair.query, pair.positive_id, pair.positive, pos_score, negatives
            )
        )
    return MiningResult(examples, dict(removed), total, short)
