"""The round-trip filter of generated questions, checked by a model trained on them.

A generated question is kept when its own passage comes back within the top ``k`` for it
(:func:`~simcse_rag.adapt_questions.round_trip_filter`). Which retriever searches matters:

* ``"adapted"`` (default): a model first trained on *all* the candidate pairs searches
  (Promptagator's consistency filter, Dai et al. 2022, https://arxiv.org/abs/2209.11755, uses
  the retriever trained on the unfiltered synthetic data). A pair the corpus supports becomes
  easy for that model; a question its passage does not answer stays hard, since the other
  pairs pull against it. The final model is then trained from the base weights on the kept
  pairs, so adaptation trains twice. Measured with real questions as the "generated" ones,
  and with random passages mixed in (docs/benchmarks.md, "round trip through a model trained
  on the generated pairs").
* ``"base"``: the base hybrid retriever searches. It drops exactly the pairs the base model
  misses, which are the ones adaptation learns most from (docs/benchmarks.md, "generator route
  with the stand-in").
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from simcse_rag.adapt_config import ROUND_TRIP_MODELS, AdaptConfig
from simcse_rag.adapt_merge import base_weights, restore_weights
from simcse_rag.adapt_pairs import sample_pairs, without_eval_queries
from simcse_rag.adapt_questions import RoundTrip, checkable_pairs, round_trip_filter
from simcse_rag.adapt_retrieval import CorpusIndexer
from simcse_rag.adapt_rounds import run_rounds
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.pairs import TrainingPair

if TYPE_CHECKING:
    from simcse_rag.datasets import QuerySet as EvalSet

logger = logging.getLogger(__name__)

__all__ = ["ROUND_TRIP_MODELS", "RoundTrip", "TrainedRoundTrip"]


@dataclasses.dataclass
class TrainedRoundTrip:
    """Round trip through a model trained on the candidates (call it with the candidates).

    The encoder is trained in place, the candidates are searched with the corpus re-indexed
    by it, and its weights are then put back to what they were, so the caller's base
    retriever and the final training start from the base model.

    Attributes:
        encoder: The base model (its weights are restored before the call returns).
        indexer: Indexes the corpus with the trained model.
        base: The corpus indexed with the base model: round 1 of the filter model mines with
            it, and it checks the candidates when too few are left to train on.
        config: Settings of the adaptation (``round_trip_k``, steps, batch, seed...).
        eval_set: The user's evaluation queries: their questions are never trained on.
        on_stage: Called with a short message as each step starts.
        seconds: Filled in by the call: time spent training and searching (also when it
            fails).
    """

    encoder: SimCSEEncoder
    indexer: CorpusIndexer
    base: Any
    config: AdaptConfig
    eval_set: EvalSet | None = None
    on_stage: Callable[[str], None] = lambda message: None
    seconds: float = 0.0

    def __call__(
        self, candidates: Sequence[TrainingPair]
    ) -> tuple[list[TrainingPair], dict[str, int]]:
        """Keep the candidates whose passage the trained model finds within ``round_trip_k``."""
        t0 = time.perf_counter()
        try:
            return self._filter(candidates)
        finally:
            self.seconds = time.perf_counter() - t0

    def _filter(
        self, candidates: Sequence[TrainingPair]
    ) -> tuple[list[TrainingPair], dict[str, int]]:
        train = self.training_pairs(candidates)
        k = self.config.round_trip_k
        if len(train) < self.config.batch_size:
            # Fewer than one batch trains no model worth checking with (and adaptation refuses
            # so few pairs anyway); the base model checks them.
            logger.info("round trip: %d candidates, checked by the base model", len(train))
            return round_trip_filter(self.base, candidates, k)
        state = base_weights(self.encoder)
        # One round, unmerged: the filter model must know every candidate as it was trained.
        config = dataclasses.replace(self.config, rounds=1, merge_weight=1.0)
        try:
            self.on_stage(f"round trip: training a filter model on {len(train)} generated pairs")
            trained = run_rounds(
                self.encoder,
                self.base,
                train,
                config,
                pseudo=False,
                indexer=self.indexer,
                on_stage=lambda message: self.on_stage(f"round trip: {message}"),
            )
            # Searched before the weights go back: the trained retriever encodes its queries
            # with the live model.
            kept, counts = round_trip_filter(trained.retriever, candidates, k)
        finally:
            restore_weights(self.encoder, state)
        return kept, {**counts, "filter_trained_on": len(train)}

    def training_pairs(self, candidates: Sequence[TrainingPair]) -> list[TrainingPair]:
        """The candidates the filter model trains on: those naming a corpus passage, none of
        them an evaluation question, at most ``max_pairs``."""
        pairs = checkable_pairs(self.base, candidates)
        if self.eval_set is not None:
            pairs = without_eval_queries(pairs, self.eval_set)
        return sample_pairs(pairs, self.config.max_pairs, self.config.seed)
