"""The demo's evaluation and adaptation stages, on top of :func:`simcse_rag.adapt.adapt`.

:func:`~simcse_rag.demo.run_demo` evaluates the base model (:func:`evaluate_before`) before the
slow fine-tuning, so its numbers show first, then adapts (:func:`run_adaptation`) with the
settings an :class:`Adaptation` plan carries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcse_rag.demo_schema import DemoConfig, DemoResult
from simcse_rag.demo_stages import DemoStages
from simcse_rag.pseudo_queries import pseudo_query_pairs
from simcse_rag.sample import SAMPLE_TRAIN, SampleData
from simcse_rag.schema import Passage

__all__ = [
    "Adaptation",
    "adapt_config",
    "evaluate_before",
    "judged_eval_set",
    "metrics",
    "run_adaptation",
    "training_pairs",
]


@dataclass(frozen=True)
class Adaptation:
    """What the adaptation stage needs besides the encoder and the corpus.

    Attributes:
        out: Folder for the adapted model.
        config: The :class:`~simcse_rag.adapt.AdaptConfig` made from the demo's settings.
        pairs: Training pairs.
        pairs_source: Where the pairs come from (for the report).
        eval_set: The judged queries of the bundled sample; ``None``: ``adapt`` holds back
            pseudo-queries itself.
        overwrite: Replace a non-empty ``out``.
        cache_dir: The run's embedding cache.
        show_progress: tqdm bars while encoding and training.
    """

    out: Path
    config: Any
    pairs: list[Any]
    pairs_source: str
    eval_set: Any
    overwrite: bool
    cache_dir: str
    show_progress: bool


def adapt_config(config: DemoConfig) -> Any:
    """The :class:`~simcse_rag.adapt.AdaptConfig` for the demo's settings."""
    from simcse_rag.adapt import AdaptConfig

    return AdaptConfig(
        max_steps=config.max_steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        train_max_length=config.train_max_length,
        # Evaluate at the model's own length, like the demo's search, and reuse its vectors.
        encode_max_length=None,
        ks=(10,),
        seed=config.seed,
    )


def judged_eval_set(sample: SampleData | None) -> Any:
    """The bundled sample's judged queries as an :class:`~simcse_rag.adapt.EvalSet`, or None."""
    if sample is None:
        return None
    from simcse_rag.adapt import EvalSet

    return EvalSet(
        dict(sample.queries),
        {q: dict(d) for q, d in sample.qrels.items()},
        f"{len(sample.qrels)} hand-written judged queries (never trained on)",
    )


def training_pairs(
    corpus: Sequence[Passage], sample: SampleData | None, seed: int
) -> tuple[list[Any], str]:
    """The training pairs and where they come from: the sample's bundled questions, else
    pseudo-queries made from ``corpus``."""
    if sample is not None and sample.train_pairs:
        source = (
            f"example questions bundled with the sample ({SAMPLE_TRAIN.name}; "
            "none is an evaluation query)"
        )
        return sample.train_pairs, source
    return pseudo_query_pairs(corpus, seed=seed)


def evaluate_before(
    retriever: Any, judged: Any, plan: Adaptation | None, stages: DemoStages, result: DemoResult
) -> DemoResult:
    """Evaluate the base model: on the judged queries, or on the pseudo-queries the adaptation
    will hold back; a user corpus without adaptation has nothing to evaluate."""
    from simcse_rag.adapt import evaluate_retriever, hold_out

    eval_set, source = judged, judged.source if judged is not None else ""
    if eval_set is None and plan is not None:
        # adapt() holds back the same queries (same call and seed) and evaluates the base model
        # on them again; doing it here as well shows those numbers before the slow fine-tuning.
        _, eval_set = hold_out(
            plan.pairs,
            eval_fraction=plan.config.eval_fraction,
            seed=plan.config.seed,
            source=plan.pairs_source,
        )
        source = f"{len(eval_set.qrels)} held-back pseudo-queries from the corpus"
    if eval_set is None:
        return result
    what = f"{len(eval_set.qrels)} queries"
    stages.start("evaluate", f"evaluating the base model on {what}")
    before = evaluate_retriever(retriever, eval_set, ks=(10,))
    result = dataclasses.replace(
        result,
        evaluation_source=source,
        evaluation_queries=len(eval_set.qrels),
        before=metrics(before),
    )
    return stages.done(f"evaluated the base model on {what}", result)


def run_adaptation(
    encoder: Any, corpus: list[Passage], plan: Adaptation, stages: DemoStages, result: DemoResult
) -> DemoResult:
    """Fine-tune ``encoder`` on ``corpus`` as ``plan`` says; ``result`` with the report."""
    from simcse_rag.adapt import adapt

    done = adapt(
        corpus,
        encoder,
        plan.out,
        config=plan.config,
        pairs=plan.pairs,
        pairs_source=plan.pairs_source,
        eval_set=plan.eval_set,
        overwrite=plan.overwrite,
        cache_dir=plan.cache_dir,
        show_progress=plan.show_progress,
        on_stage=lambda message: stages.start("adapt", message),
    )
    report = done.report
    steps = sum(r["train"]["steps"] for r in report["rounds"])
    result = dataclasses.replace(
        result,
        # The report's numbers, so the output matches report.md / report.json.
        before=metrics(report["before"]),
        after=metrics(report["after"]),
        adaptation=report,
        adapted_model=done.output_dir,
        notes=[*result.notes, *(f"warning: {w}" for w in report.get("warnings", []))],
    )
    return stages.done(
        f"adapted the model: {steps} steps on {report['training']['pairs']} pairs", result
    )


def metrics(table: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """A report's ``{mode: {metric: value}}`` table as floats, without the query count."""
    return {
        mode: {m: float(v) for m, v in row.items() if m != "queries"} for mode, row in table.items()
    }
