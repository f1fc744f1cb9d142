"""The training stage of domain adaptation: rounds of mining + fine-tuning, then the merge.

Each round mines hard negatives with the current model's retriever
(:func:`~simcse_rag.adapt_retrieval.mine_with_retriever`), fine-tunes the encoder in memory with
the supervised SimCSE loss (:func:`train_round`, in-batch + mined negatives) and re-indexes the
corpus with the new model; after the last round the weights are merged with the base model's
(:mod:`simcse_rag.adapt_merge`) when the merge weight is below 1.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simcse_rag.adapt_config import AdaptConfig
from simcse_rag.adapt_merge import base_weights, merge_with_base
from simcse_rag.adapt_retrieval import CorpusIndexer, mine_with_retriever
from simcse_rag.data import TrainExample, example_from_mined
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.mining import MiningResult
from simcse_rag.pairs import TrainingPair
from simcse_rag.pseudo_queries import negative_view, pseudo_query_strategy
from simcse_rag.schema import Passage


@dataclass(frozen=True)
class RoundsResult:
    """What :func:`run_rounds` returns.

    Attributes:
        retriever: The corpus indexed with the adapted (and merged) model.
        rounds: One report entry per round: mining counts, training summary, seconds.
        mined: The last round's mined negatives (written to ``mined.jsonl``).
    """

    retriever: Any
    rounds: list[dict[str, Any]]
    mined: MiningResult


def run_rounds(
    encoder: SimCSEEncoder,
    retriever: Any,
    pairs: Sequence[TrainingPair],
    config: AdaptConfig,
    *,
    pseudo: bool,
    indexer: CorpusIndexer,
    on_stage: Callable[[str], None],
    guessed: bool = False,
) -> RoundsResult:
    """Fine-tune ``encoder`` in place for ``config.rounds`` rounds of mining + training.

    Args:
        encoder: The model being adapted (the one ``retriever`` was built with).
        retriever: The corpus indexed with the base model; round 1 mines with it.
        pairs: Training pairs (none of them held out).
        config: Settings; learning rate and merge weight resolve by ``pseudo``.
        pseudo: The pairs are pseudo-queries (own defaults, negatives in the positives' form).
        indexer: Re-indexes the corpus with the model of each round.
        on_stage: Called with a short message as each step starts.
        guessed: The pairs' labels are the base retriever's guesses (``queries=``): mining
            skips the best-ranked candidates, as for pseudo-queries.

    Returns:
        The adapted model's retriever, the rounds' report entries and the last mined negatives.
    """
    learning_rate = config.learning_rate_for(pseudo=pseudo)
    merge_weight = config.merge_weight_for(pseudo=pseudo)
    base_state = base_weights(encoder) if merge_weight < 1.0 else None
    rounds: list[dict[str, Any]] = []
    mined: MiningResult | None = None
    for r in range(1, config.rounds + 1):
        t0 = time.perf_counter()
        on_stage(f"round {r}: mining hard negatives for {len(pairs)} pairs")
        mining = config.mining_for_round(
            r, pseudo=pseudo, corpus_size=len(indexer.passages), guessed=guessed
        )
        mined = mine_with_retriever(retriever, pairs, mining)
        mine_s = time.perf_counter() - t0
        examples = training_examples(mined, pairs, indexer.passages, config.seed + r)
        on_stage(f"round {r}: fine-tuning for {config.steps_for(len(examples))} steps")
        trained = train_round(
            encoder,
            examples,
            config,
            learning_rate=learning_rate,
            round_no=r,
            show_progress=indexer.show_progress,
        )
        if base_state is not None and r == config.rounds:
            merge_with_base(encoder, base_state, merge_weight)
        t0 = time.perf_counter()
        on_stage(f"round {r}: encoding {len(indexer.passages)} passages with the adapted model")
        retriever = indexer.index(encoder)
        rounds.append(
            {
                "mining": {**mined.stats(), "range_min": mining.range_min},
                "mining_s": round(mine_s, 1),
                "train": trained,
                "encode_s": round(time.perf_counter() - t0, 1),
            }
        )
    assert mined is not None  # config.rounds >= 1 (checked by AdaptConfig)
    return RoundsResult(retriever, rounds, mined)


def training_examples(
    result: MiningResult,
    pairs: Sequence[TrainingPair],
    corpus: Sequence[Passage],
    seed: int,
) -> list[TrainExample]:
    """The trainer's examples (query, positive, negatives) of the mined pairs.

    Negatives of pseudo-query pairs take the form the pair's strategy gives its positive
    (:func:`simcse_rag.pseudo_queries.negative_view`); labelled pairs keep whole passages.

    Args:
        result: The round's mined negatives.
        pairs: The training pairs mined for (their query ids name their strategy).
        corpus: The passages the negatives' ids point into.
        seed: Seed of the negatives' views (crops, dropped sentences).
    """
    strategies = {p.query_id: pseudo_query_strategy(p) for p in pairs}
    passages = {p.id: p for p in corpus}
    rng = random.Random(seed)
    examples = []
    for e in result.examples:
        strategy = strategies.get(e.query_id)
        negatives = [
            negative_view(passages[n.id], strategy, rng) if strategy else n.text
            for n in e.negatives
        ]
        examples.append(example_from_mined(e, negatives))
    return examples


def train_round(
    encoder: SimCSEEncoder,
    examples: list[TrainExample],
    config: AdaptConfig,
    *,
    learning_rate: float,
    round_no: int,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune ``encoder`` in memory on one round's examples; nothing is written to disk.

    Returns:
        The round's training summary for the report (steps, losses, seconds, settings).
    """
    from simcse_rag.trainer import TrainingConfig, train

    # Pairs of one query may get different numbers of negatives; the trainer takes any count.
    # Training truncates at train_max_length, so the encode-stage limit on encoder.max_length
    # does not reach it. Checkpoint and eval steps do nothing in memory (no output folder, no
    # eval_fn); they are pinned to the round's steps so report.json's training_config stays
    # comparable.
    steps = config.steps_for(len(examples))
    tconfig = TrainingConfig(
        max_steps=steps,
        batch_size=min(config.batch_size, len(examples)),
        learning_rate=learning_rate,
        warmup_ratio=config.warmup_ratio,
        max_length=config.train_max_length,
        mini_batch_size=config.mini_batch_size,
        checkpoint_steps=steps,
        eval_steps=steps,
        seed=config.seed + round_no,
    )
    result = train(encoder, examples, tconfig, output_dir=None, show_progress=show_progress)
    losses = result.losses
    return {
        "steps": result.global_step,
        "first_loss": round(losses[0], 4) if losses else None,
        "final_loss": round(float(np.mean(losses[-10:])), 4) if losses else None,
        "seconds": round(result.seconds, 1),
        "training_config": tconfig.to_dict(),
    }
