"""Settings of a domain adaptation: :class:`AdaptConfig` and the defaults it resolves.

The tuned defaults were chosen on held-out real questions with ``benchmarks/adapt.py``; the
numbers behind each live in docs/benchmarks.md, "Domain adaptation".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from simcse_rag import _validate
from simcse_rag.adapt_questions import DEFAULT_LABEL_RULE, LabelRule
from simcse_rag.mining import MiningConfig
from simcse_rag.pseudo_queries import STRATEGIES

#: Share of the fine-tuned weights kept for pseudo-query adaptation (the rest is the base
#: model): merging lifted pseudo-query runs (docs/benchmarks.md, "corpus-only").
PSEUDO_MERGE_WEIGHT = 0.3
#: Mining candidates ranked 1..N are never negatives of pseudo-queries: a query made from one
#: passage finds the other parts of its document first, and real questions want those too
#: (docs/benchmarks.md, "corpus-only"). Questions labelled by the base retriever name one
#: passage too, and skip the same N: among the best-ranked candidates many are relevant
#: (docs/benchmarks.md, "false negatives of guessed labels").
PSEUDO_RANGE_MIN = 10
#: Peak learning rate with labelled pairs (docs/benchmarks.md, "labelled learning rate").
LABELLED_LEARNING_RATE = 1e-4
#: Merge weight advised when a labelled run falls below a base that was already strong on the
#: domain; where the base is weak merging costs, so labelled runs keep weight 1 by default
#: (docs/benchmarks.md, "merging with the base").
STRONG_BASE_MERGE_WEIGHT = 0.5
#: Share of the fine-tuned weights kept when the training questions were labelled by the base
#: retriever (``queries=``): their wrong labels cost less when half the base stays; merged,
#: TAT-QA and LiveQA both gained more than unmerged (docs/benchmarks.md, "merging questions").
QUESTIONS_MERGE_WEIGHT = 0.5
#: Peak learning rate with pseudo-queries: :data:`PSEUDO_MERGE_WEIGHT` and
#: :data:`PSEUDO_RANGE_MIN` were tuned with it (docs/benchmarks.md, "corpus-only").
PSEUDO_LEARNING_RATE = 5e-5
#: Rank within which a generated question's own passage must come back for the question to be
#: kept (the round-trip filter; docs/benchmarks.md, "Adapting from questions without labels").
ROUND_TRIP_K = 20
#: Which model the round trip searches with (:mod:`simcse_rag.adapt_round_trip`): ``adapted``
#: (first trained on all generated pairs) or ``base``.
ROUND_TRIP_MODELS = ("adapted", "base")
#: Most passes over the training pairs in one round: a handful of pairs trained for
#: ``max_steps`` collapsed the model (docs/benchmarks.md, "Adapting from questions without
#: labels"); every default measured there and under "labelled learning rate" stays under it.
MAX_PASSES = 12
#: Fewest passages a corpus needs beyond the negatives asked for (positive + in-batch partners).
MIN_EXTRA_PASSAGES = 8


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of :func:`simcse_rag.adapt.adapt`.

    The defaults are sized for a corpus of about 20k passages on a 2-core CPU: the corpus is
    encoded twice (base model for mining and "before", adapted model for "after") at 128
    tokens, plus 100 steps of 32 pairs with one mined negative each (the measured cost is in
    docs/benchmarks.md, "Domain adaptation", "Cost").

    Attributes:
        strategy: Pseudo-query strategy when no labelled pairs are given: ``keywords``,
            ``title``, ``ict`` or ``crop`` (:mod:`simcse_rag.pseudo_queries`). ``auto`` (the
            default) refuses to adapt without labelled pairs, because corpus-only adaptation
            gains little (docs/benchmarks.md, "corpus-only").
        max_pairs: Most training pairs used (pseudo-queries made; labelled pairs sampled).
        eval_fraction: Share of training queries held back when no ``eval_set`` is given.
        mining: Hard-negative mining settings.
        rounds: Mine + train rounds; round ``r > 1`` re-mines with the model of round ``r - 1``.
        max_steps: Optimizer steps per round (fewer with few pairs, see ``max_passes``).
        max_passes: Most passes over the training pairs per round: with few pairs a round
            stops after ``max_passes * pairs / batch`` steps (:data:`MAX_PASSES`); ``None``
            always runs ``max_steps``.
        batch_size: Pairs per step (the other pairs' passages are in-batch negatives).
        learning_rate: Peak AdamW learning rate. ``None`` (default):
            :data:`LABELLED_LEARNING_RATE` (1e-4) for labelled pairs,
            :data:`PSEUDO_LEARNING_RATE` (5e-5) for pseudo-queries.
        warmup_ratio: Linear warm-up share of the steps.
        train_max_length: Token limit of training texts (queries are shorter anyway).
        mini_batch_size: Texts per forward pass with a graph when training (GradCache,
            ``TrainingConfig.mini_batch_size``): the gradient of the whole batch is computed in
            chunks, so training activations stay those of one chunk instead of the batch's
            queries, positives and negatives at once (most of the run's peak memory). It costs
            one more forward pass per step; ``None`` trains the batch in one pass. Dropout
            masks are drawn per chunk, so runs with and without it differ as two seeds do.
        encode_max_length: Token limit when encoding the corpus for mining and evaluation
            (CPU time); ``None`` keeps the model's. The saved model keeps its own limit.
        merge_weight: Weight of the fine-tuned model when its weights are averaged with the base
            model's (``base + w * (tuned - base)``; WiSE-FT, Wortsman et al. 2022,
            https://arxiv.org/abs/2109.01903). ``1.0`` keeps the fine-tuned model. ``None``
            (default): :data:`PSEUDO_MERGE_WEIGHT` for pseudo-queries,
            :data:`QUESTIONS_MERGE_WEIGHT` for questions labelled by the base retriever
            (``queries=``), ``1.0`` for labelled pairs and generated questions (merging helps
            adaptation from guessed labels and costs labelled adaptation where the base is
            weak; docs/benchmarks.md, "Domain adaptation").
        pseudo_range_min: For pseudo-query pairs and questions labelled by the base retriever
            (``queries=``), whose label is one passage where others may be relevant too,
            mining skips at least this many best-ranked candidates, but at most a tenth of the
            corpus and never so many that fewer than ``num_negatives`` stay within
            ``range_max`` (``range_min`` of :attr:`mining` is raised to it; see
            :data:`PSEUDO_RANGE_MIN`). Labelled pairs and generated questions use
            :attr:`mining` as given.
        label_rule: When a question of ``queries=`` / ``--queries`` keeps the base retriever's
            top passage as its label (:class:`~simcse_rag.adapt_questions.LabelRule`); default
            :data:`~simcse_rag.adapt_questions.DEFAULT_LABEL_RULE`: BM25 ranks it first too
            and dense within its top 10.
        round_trip_k: A generated question is kept when its own passage ranks within this many
            hybrid hits for it (:data:`ROUND_TRIP_K`).
        round_trip_model: The retriever of that check: ``"adapted"`` (default) trains a model
            on all the generated pairs first and searches with it, so the pairs the base model
            misses but the corpus supports stay (adaptation then trains twice); ``"base"``
            searches with the base model (:mod:`simcse_rag.adapt_round_trip`).
        ks: Metric cut-offs.
        seed: Seed for pseudo-queries, splits, mining and training.
    """

    strategy: str = "auto"
    max_pairs: int = 4000
    eval_fraction: float = 0.3
    mining: MiningConfig = field(default_factory=lambda: MiningConfig(num_negatives=1))
    rounds: int = 1
    max_steps: int = 100
    max_passes: float | None = MAX_PASSES
    batch_size: int = 32
    learning_rate: float | None = None
    warmup_ratio: float = 0.1
    train_max_length: int = 128
    mini_batch_size: int | None = 16
    encode_max_length: int | None = 128
    merge_weight: float | None = None
    pseudo_range_min: int = PSEUDO_RANGE_MIN
    label_rule: LabelRule = DEFAULT_LABEL_RULE
    round_trip_k: int = ROUND_TRIP_K
    round_trip_model: str = "adapted"
    ks: tuple[int, ...] = (10, 100)
    seed: int = 0

    def __post_init__(self) -> None:
        _validate.one_of(self.strategy, "strategy", STRATEGIES)
        _validate.one_of(self.round_trip_model, "round_trip_model", ROUND_TRIP_MODELS)
        checked = {
            name: _validate.positive_int(getattr(self, name), f"AdaptConfig.{name}")
            for name in ("max_pairs", "rounds", "max_steps", "train_max_length")
        }
        checked["batch_size"] = _validate.int_at_least(self.batch_size, "AdaptConfig.batch_size", 2)
        for name in ("mini_batch_size", "encode_max_length"):
            checked[name] = _validate.optional_positive_int(getattr(self, name), name)
        passes = self.max_passes
        if passes is not None and (isinstance(passes, bool) or not 0 < passes < float("inf")):
            raise ValueError(f"max_passes must be a positive number or None, got {passes!r}.")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction!r}.")
        if self.learning_rate is not None and not 0 < self.learning_rate < float("inf"):
            raise ValueError(
                f"learning_rate must be a positive number or None, got {self.learning_rate!r}."
            )
        if self.merge_weight is not None and not 0.0 < self.merge_weight <= 1.0:
            raise ValueError(f"merge_weight must be in (0, 1] or None, got {self.merge_weight!r}.")
        if not isinstance(self.mining, MiningConfig):
            raise TypeError(f"mining must be a MiningConfig, got {type(self.mining).__name__}.")
        checked["pseudo_range_min"] = _validate.non_negative_int(
            self.pseudo_range_min, "pseudo_range_min"
        )
        checked["ks"] = _validate.positive_ints(self.ks, "ks")
        checked["round_trip_k"] = _validate.positive_int(self.round_trip_k, "round_trip_k")
        if not isinstance(self.label_rule, LabelRule):
            raise TypeError(
                f"label_rule must be a LabelRule, got {type(self.label_rule).__name__}."
            )
        for name, value in checked.items():  # plain ints: a numpy integer would not go to JSON
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (saved in the report)."""
        return dataclasses.asdict(self)

    def steps_for(self, examples: int) -> int:
        """Steps of a round over ``examples`` training examples: :attr:`max_steps`, cut to
        :attr:`max_passes` passes over them (at least one step)."""
        if self.max_passes is None or examples <= 0:
            return self.max_steps
        batch = min(self.batch_size, examples)
        return max(1, min(self.max_steps, math.ceil(self.max_passes * examples / batch)))

    def learning_rate_for(self, *, pseudo: bool) -> float:
        """:attr:`learning_rate`, or the default for pseudo-query / labelled pairs."""
        if self.learning_rate is not None:
            return self.learning_rate
        return PSEUDO_LEARNING_RATE if pseudo else LABELLED_LEARNING_RATE

    def merge_weight_for(self, *, pseudo: bool) -> float:
        """:attr:`merge_weight`, or the default for pseudo-query / labelled pairs."""
        if self.merge_weight is not None:
            return self.merge_weight
        return PSEUDO_MERGE_WEIGHT if pseudo else 1.0

    def mining_for_round(
        self, round_no: int, *, pseudo: bool, corpus_size: int, guessed: bool = False
    ) -> MiningConfig:
        """The mining settings of round ``round_no`` (1-based): a fresh seed per round, and for
        pseudo-query pairs and ``guessed`` labels (questions labelled by the base retriever)
        the best-ranked candidates skipped (:attr:`pseudo_range_min`)."""
        mining = dataclasses.replace(self.mining, seed=self.mining.seed + round_no - 1)
        if not (pseudo or guessed):
            return mining
        # At most a tenth of the corpus is skipped, so a small corpus keeps some hard negatives,
        # and the rank window keeps room for num_negatives.
        window = self.mining.range_max - self.mining.num_negatives
        skip = min(self.pseudo_range_min, corpus_size // 10, window)
        return dataclasses.replace(mining, range_min=max(self.mining.range_min, skip))
