"""Domain adaptation: training pairs -> mined hard negatives -> fine-tuning -> before/after report.

:func:`adapt` is a pipeline of named stages:

1. **Pairs** (:func:`prepare_pairs`, :mod:`simcse_rag.adapt_pairs`): labelled (query, positive)
   pairs when the user has them (BEIR qrels or a TSV, :mod:`simcse_rag.pairs`), else
   pseudo-queries made from the corpus (:mod:`simcse_rag.pseudo_queries`). Unsupervised SimCSE
   on the target corpus alone barely moves retrieval (sentence-transformers' domain-adaptation
   tables), (query, passage) pairs with mined negatives do (GPL, Wang et al. 2022,
   https://arxiv.org/abs/2112.07577). Held-out evaluation queries are ``eval_set`` when given;
   otherwise a seeded share of the training *queries* is held back (all pairs of a held-out
   query leave training). Questions without labels (``queries=``, ``generated=``) are first
   turned into pairs (:mod:`simcse_rag.adapt_questions`): the base retriever labels question
   logs, and generated questions pass a round trip through a model trained on them
   (:mod:`simcse_rag.adapt_round_trip`), so the corpus is indexed before this stage, once.
2. **Baseline** (:func:`measure_base`): the corpus indexed with the base model
   (:mod:`simcse_rag.adapt_retrieval`) and its dense, BM25 and hybrid metrics.
3. **Rounds** (:func:`simcse_rag.adapt_rounds.run_rounds`): mining with the current model +
   BM25 and false-negative filters (:mod:`simcse_rag.mining`), fine-tuning in memory with the
   supervised SimCSE loss (in-batch + mined negatives), re-indexing; then the merge with the
   base weights (:mod:`simcse_rag.adapt_merge`).
4. **Report** (:func:`simcse_rag.adapt_report.build_report`): the metrics after, next to those
   before, on the held-out queries, with what the user must know before deploying.

The encode stages run at ``AdaptConfig.encode_max_length`` tokens
(:func:`~simcse_rag.adapt_retrieval.encoder_max_length`); the saved model keeps its own limit.
The output folder is a model folder (``SentenceTransformer(out)`` loads it) that also holds
``report.json``, ``report.md``, ``report.png`` (with matplotlib) and ``mined.jsonl``. It is
written to a temporary sibling and renamed into place, so an existing model is never lost.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcse_rag import _io
from simcse_rag.adapt_config import (
    LABELLED_LEARNING_RATE,
    MIN_EXTRA_PASSAGES,
    PSEUDO_LEARNING_RATE,
    PSEUDO_MERGE_WEIGHT,
    PSEUDO_RANGE_MIN,
    QUESTIONS_MERGE_WEIGHT,
    STRONG_BASE_MERGE_WEIGHT,
    AdaptConfig,
)
from simcse_rag.adapt_fusion import choose_fusion, hold_back_validation
from simcse_rag.adapt_generation import GenerationConfig, generate_candidates, with_generation
from simcse_rag.adapt_merge import base_weights, merge_with_base
from simcse_rag.adapt_pairs import (
    CORPUS_ONLY_REFUSAL,
    PreparedPairs,
    hold_out,
    pairs_to_eval_set,
    prepare_pairs,
    sample_pairs,
)
from simcse_rag.adapt_questions import QuestionPairs
from simcse_rag.adapt_report import (
    MODES,
    adaptation_warnings,
    build_report,
    write_chart,
    write_json,
    write_markdown,
)
from simcse_rag.adapt_retrieval import (
    CorpusIndexer,
    build_retriever,
    encoder_max_length,
    evaluate_retriever,
    index_base,
    label_stage,
    measure_base,
    mine_with_retriever,
)
from simcse_rag.adapt_round_trip import TrainedRoundTrip
from simcse_rag.adapt_rounds import run_rounds

# EvalSet: the held-out queries adapt() evaluates on; the one query-set type, under its older name.
from simcse_rag.datasets import QuerySet as EvalSet
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.mining import MiningResult
from simcse_rag.pairs import TrainingPair
from simcse_rag.schema import Passage

# The stages' modules stay importable from here, where the CLI, demo, recipes, benchmarks and
# tests have always found them.
__all__ = [
    "CORPUS_ONLY_REFUSAL",
    "LABELLED_LEARNING_RATE",
    "MINED_JSONL",
    "MODES",
    "PSEUDO_LEARNING_RATE",
    "PSEUDO_MERGE_WEIGHT",
    "PSEUDO_RANGE_MIN",
    "QUESTIONS_MERGE_WEIGHT",
    "REPORT_JSON",
    "REPORT_MD",
    "REPORT_PNG",
    "STRONG_BASE_MERGE_WEIGHT",
    "AdaptConfig",
    "AdaptResult",
    "EvalSet",
    "GenerationConfig",
    "PreparedPairs",
    "QuestionPairs",
    "adapt",
    "adaptation_warnings",
    "base_weights",
    "build_report",
    "build_retriever",
    "check_output_dir",
    "evaluate_retriever",
    "hold_out",
    "index_base",
    "label_stage",
    "measure_base",
    "merge_with_base",
    "mine_with_retriever",
    "pairs_to_eval_set",
    "prepare_pairs",
    "sample_pairs",
]

logger = logging.getLogger(__name__)

#: Why questions labelled by the base retriever (``queries=``) never choose the fusion: their
#: labels are the retriever's own top passages, so held-back ones reward the fusion closest to
#: the labelling rule, not relevance (docs/benchmarks.md, "labels from the BM25 leg").
SILVER_FUSION_REASON = (
    "the training questions were labelled by the base retriever itself, so none is held back "
    "to choose the fusion"
)
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_PNG = "report.png"
MINED_JSONL = "mined.jsonl"


@dataclass(frozen=True)
class AdaptResult:
    """What :func:`adapt` returns: the output folder and the report (as saved in report.json)."""

    output_dir: Path
    report: dict[str, Any]


@dataclass(frozen=True)
class _Questions:
    """The questions without labels :func:`adapt` was given (``unlabelled``: any at all)."""

    queries: Sequence[str] | Mapping[str, str] | None
    generated: Sequence[TrainingPair] | None
    generator: object | None
    generation: GenerationConfig | None

    @property
    def unlabelled(self) -> bool:
        return any(v is not None for v in (self.queries, self.generated, self.generator))


def check_output_dir(out: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Refuse to replace an existing non-empty folder unless ``overwrite``.

    Raises:
        FileExistsError: ``out`` exists, is not empty and ``overwrite`` is false.
        NotADirectoryError: ``out`` is a file.
    """
    out = Path(out)
    if out.is_file():
        raise NotADirectoryError(f"--out {str(out)!r} is a file; give a folder path.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{str(out)!r} already exists and is not empty; pass --overwrite (overwrite=True) "
            "to replace it, or choose another --out."
        )
    return out


# --------------------------------------------------------------------------- the pipeline
def adapt(
    corpus: Sequence[Passage],
    encoder: SimCSEEncoder,
    out: str | os.PathLike[str],
    *,
    config: AdaptConfig | None = None,
    pairs: Sequence[TrainingPair] | None = None,
    pairs_source: str = "",
    eval_set: EvalSet | None = None,
    queries: Sequence[str] | Mapping[str, str] | None = None,
    generated: Sequence[TrainingPair] | None = None,
    generator: object | None = None,
    generation: GenerationConfig | None = None,
    overwrite: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    show_progress: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> AdaptResult:
    """Adapt ``encoder`` to ``corpus`` and save the model with a before/after report.

    Args:
        corpus: The user's passages.
        encoder: Base model; it is fine-tuned in place.
        out: Output model folder.
        config: Settings (default :class:`AdaptConfig`).
        pairs: Labelled training pairs; ``None`` (and no ``queries`` / ``generated``) makes
            pseudo-queries from the corpus.
        pairs_source: Description of ``pairs`` for the report.
        eval_set: Held-out evaluation queries; ``None`` holds back ``config.eval_fraction`` of
            the training queries (with ``queries`` / ``generated``, their labels are the base
            retriever's own, and the report says so).
        queries: Questions without labels (a mapping id -> text keeps the ids), labelled by
            the base hybrid retriever under ``config.label_rule``.
        generated: Generated questions paired with their source passages, kept by the
            round-trip filter (``config.round_trip_k``, ``config.round_trip_model``).
        generator: An LLM that writes ``generated`` (:mod:`simcse_rag.adapt_generation`).
        generation: How ``generator`` is asked; default :class:`GenerationConfig`.
        overwrite: Replace an existing non-empty ``out``.
        cache_dir: Keep corpus embeddings per model here (reused by later runs).
        show_progress: tqdm bars for encoding and training.
        on_stage: Called with a short message as each stage starts (CLI progress).

    Returns:
        The output folder and the report.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is false (checked before any work).
        ValueError: A corpus too small to mine from, bad pairs, ``pairs`` together with
            ``queries`` / ``generated``, no question kept, or nothing to evaluate.
    """
    started, config = time.perf_counter(), config or AdaptConfig()
    out = check_output_dir(out, overwrite=overwrite)
    asked = _Questions(queries, generated, generator, generation)
    _check_sources(pairs, asked, config)  # before all else
    stage = on_stage or (lambda message: logger.info("%s", message))
    corpus = _checked_corpus(corpus, config)
    base_model = encoder.name_or_path
    indexer = CorpusIndexer(corpus, cache_dir=cache_dir, show_progress=show_progress)
    base, questions, timings = None, None, {}
    if asked.unlabelled:
        base, questions, timings = _question_stage(encoder, indexer, config, asked, eval_set, stage)
        pairs, pairs_source = questions.pairs, questions.source
    stage("making training pairs")
    prepared = prepare_pairs(
        corpus, config, pairs, pairs_source=pairs_source, eval_set=eval_set, questions=questions
    )
    guessed = questions is not None and "queries" in questions.filters
    config, prepared, validation, kept_default = _guessed_label_settings(config, prepared, guessed)
    before, after, trained, fusion = _train_and_measure(
        encoder, indexer, config, prepared, validation, base, timings, stage, kept_default,
        guessed=guessed,
    )  # fmt: skip
    timings["total_s"] = time.perf_counter() - started
    report = build_report(
        config, prepared, trained.rounds, before, after, base_model=base_model,
        passages=len(corpus), timings=timings,
    )  # fmt: skip
    report["fusion"] = fusion.to_report()
    _write_output(out, encoder, report, trained.mined, fusion.save)
    logger.info("adapted model and report written to %s", out)
    return AdaptResult(out, report)


def _guessed_label_settings(
    config: AdaptConfig, prepared: PreparedPairs, guessed: bool
) -> tuple[AdaptConfig, PreparedPairs, EvalSet | None, str]:
    """``(config, prepared, fusion-choice queries or None, why none)``: labels the retriever
    guessed (``queries=``) keep half the base unless a merge weight was set, and none is held
    back, as held-back guesses reward the fusion nearest the labelling rule (docs/benchmarks.md,
    "merging questions")."""
    if not guessed:
        prepared, validation = hold_back_validation(prepared, config.seed)
        return config, prepared, validation, ""
    if config.merge_weight is None:
        config = dataclasses.replace(config, merge_weight=QUESTIONS_MERGE_WEIGHT)
    return config, prepared, None, SILVER_FUSION_REASON


def _train_and_measure(
    encoder: SimCSEEncoder,
    indexer: CorpusIndexer,
    config: AdaptConfig,
    prepared: PreparedPairs,
    validation: EvalSet | None,
    base: Any,
    timings: dict[str, float],
    stage: Callable[[str], None],
    kept_default: str = "",
    *,
    guessed: bool = False,
) -> tuple[dict, dict, Any, Any]:
    """Stages 2-3: the base measured, the rounds trained (``guessed``: labels the base retriever
    made), the adapted model measured and its fusion chosen on ``validation``
    (``kept_default``: why there is none); ``timings`` gains each step's seconds."""
    with encoder_max_length(encoder, config.encode_max_length):
        retriever, before, more = measure_base(
            encoder, indexer, prepared.eval_set, ks=config.ks, on_stage=stage, retriever=base
        )
        timings.update(more)
        trained = run_rounds(
            encoder,
            retriever,
            prepared.train,
            config,
            pseudo=prepared.pseudo,
            indexer=indexer,
            on_stage=stage,
            guessed=guessed,
        )
        t0 = time.perf_counter()
        after = evaluate_retriever(trained.retriever, prepared.eval_set, ks=config.ks)
        timings["evaluate_after_s"] = time.perf_counter() - t0
        fusion = choose_fusion(
            trained.retriever,
            validation,
            prepared.eval_set,
            ks=config.ks,
            kept_default=kept_default,
        )
    return before, after, trained, fusion


def _question_stage(
    encoder: SimCSEEncoder,
    indexer: CorpusIndexer,
    config: AdaptConfig,
    asked: _Questions,
    eval_set: EvalSet | None,
    stage: Callable[[str], None],
) -> tuple[Any, Any, dict[str, float]]:
    """Questions without labels -> pairs: an LLM's questions (when ``asked.generator``), then the
    base retriever's labels and the round-trip filter (:func:`label_stage`; by default through
    a model trained on the generated pairs, :class:`TrainedRoundTrip`)."""
    made, generated = None, asked.generated
    if asked.generator is not None:
        made = generate_candidates(
            indexer.passages,
            asked.generator,
            config,
            asked.generation,
            show_progress=indexer.show_progress,
            on_stage=stage,
        )
        generated = made.pairs
    with encoder_max_length(encoder, config.encode_max_length):
        base, timings = index_base(encoder, indexer, on_stage=stage)
        trip = None
        if generated is not None and config.round_trip_model == "adapted":
            trip = TrainedRoundTrip(encoder, indexer, base, config, eval_set, stage)
        questions, more = label_stage(
            base, config, asked.queries, generated, eval_set, on_stage=stage, round_trip=trip
        )
    timings.update(more)
    if trip is not None:  # a part of labelling's time, reported on its own
        timings["round_trip_filter_s"] = trip.seconds
        timings["label_questions_s"] -= trip.seconds
    if made is not None:  # the report names the LLM and what generation dropped
        questions = with_generation(questions, made)
    return base, questions, timings


def _check_sources(
    pairs: Sequence[TrainingPair] | None, asked: _Questions, config: AdaptConfig
) -> None:
    """Refuse sources that cannot go together (or none at all)."""
    if asked.generator is not None and asked.generated is not None:
        raise ValueError("Give generator (an LLM) or generated (its pairs), not both.")
    if pairs is not None and asked.unlabelled:
        raise ValueError(
            "Give labelled pairs or questions without labels (queries / generated), not both; "
            "drop --pairs/--train-data or --queries."
        )
    if pairs is None and not asked.unlabelled and config.strategy == "auto":
        raise ValueError(CORPUS_ONLY_REFUSAL)  # also in prepare_pairs; here before any work


def _checked_corpus(corpus: Sequence[Passage], config: AdaptConfig) -> list[Passage]:
    corpus = list(corpus)
    needed = config.mining.num_negatives + MIN_EXTRA_PASSAGES
    if len(corpus) < needed:
        raise ValueError(
            f"The corpus has {len(corpus)} passages; mining {config.mining.num_negatives} "
            f"negatives needs at least {needed}. Add passages or lower num_negatives."
        )
    if len({p.id for p in corpus}) != len(corpus):
        raise ValueError("Corpus passage ids must be unique.")
    return corpus


# --------------------------------------------------------------------------- saving
def _write_output(
    out: Path,
    encoder: SimCSEEncoder,
    report: Mapping[str, Any],
    mined: MiningResult,
    save_fusion: Callable[[Path], object],
) -> None:
    def write(tmp: Path) -> None:
        encoder.save_pretrained(tmp)
        save_fusion(tmp)
        write_json(report, tmp / REPORT_JSON)
        chart = write_chart(report, tmp / REPORT_PNG)
        write_markdown(report, tmp / REPORT_MD, chart=REPORT_PNG if chart else None)
        mined.write_jsonl(tmp / MINED_JSONL)

    _io.atomic_write_dir(out, write)
