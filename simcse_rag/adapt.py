"""Domain adaptation: training pairs -> mined hard negatives -> fine-tuning -> before/after report.

:func:`adapt` is a pipeline of named stages:

1. **Pairs** (:func:`prepare_pairs`, :mod:`simcse_rag.adapt_pairs`): labelled (query, positive)
   pairs when the user has them (BEIR qrels or a TSV, :mod:`simcse_rag.pairs`), else
   pseudo-queries made from the corpus (:mod:`simcse_rag.pseudo_queries`). Unsupervised SimCSE
   on the target corpus alone barely moves retrieval (sentence-transformers' domain-adaptation
   tables), (query, passage) pairs with mined negatives do (GPL, Wang et al. 2022,
   https://arxiv.org/abs/2112.07577). Held-out evaluation queries are ``eval_set`` when given;
   otherwise a seeded share of the training *queries* is held back (all pairs of a held-out
   query leave training).
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
    STRONG_BASE_MERGE_WEIGHT,
    AdaptConfig,
)
from simcse_rag.adapt_fusion import choose_fusion, hold_back_validation
from simcse_rag.adapt_merge import base_weights, merge_with_base
from simcse_rag.adapt_pairs import (
    CORPUS_ONLY_REFUSAL,
    check_eval_set,
    sample_pairs,
    training_pairs,
    without_eval_queries,
)
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
    mine_with_retriever,
)
from simcse_rag.adapt_rounds import run_rounds

# EvalSet: the held-out queries adapt() evaluates on; the one query-set type, under its older name.
from simcse_rag.datasets import QuerySet as EvalSet
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.mining import MiningResult
from simcse_rag.pairs import TrainingPair, split_queries
from simcse_rag.pseudo_queries import is_pseudo_query
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
    "REPORT_JSON",
    "REPORT_MD",
    "REPORT_PNG",
    "STRONG_BASE_MERGE_WEIGHT",
    "AdaptConfig",
    "AdaptResult",
    "EvalSet",
    "PreparedPairs",
    "adapt",
    "adaptation_warnings",
    "base_weights",
    "build_report",
    "build_retriever",
    "check_output_dir",
    "evaluate_retriever",
    "hold_out",
    "measure_base",
    "merge_with_base",
    "mine_with_retriever",
    "pairs_to_eval_set",
    "prepare_pairs",
    "sample_pairs",
]

logger = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_PNG = "report.png"
MINED_JSONL = "mined.jsonl"


@dataclass(frozen=True)
class AdaptResult:
    """What :func:`adapt` returns: the output folder and the report (as saved in report.json)."""

    output_dir: Path
    report: dict[str, Any]


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


# --------------------------------------------------------------------------- 1. pairs
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
    """

    train: list[TrainingPair]
    eval_set: EvalSet
    source: str
    pseudo: bool
    pseudo_eval: bool


def prepare_pairs(
    corpus: Sequence[Passage],
    config: AdaptConfig,
    pairs: Sequence[TrainingPair] | None = None,
    *,
    pairs_source: str = "",
    eval_set: EvalSet | None = None,
) -> PreparedPairs:
    """Training pairs and held-out evaluation queries (stage 1 of :func:`adapt`).

    Args:
        corpus: The passages (ids unique).
        config: Settings (strategy, ``max_pairs``, ``eval_fraction``, seed).
        pairs: Labelled pairs; ``None`` makes pseudo-queries from the corpus.
        pairs_source: Description of ``pairs`` for the report.
        eval_set: Held-out queries; ``None`` holds back ``config.eval_fraction`` of the pairs'
            queries.

    Raises:
        ValueError: No pairs and ``strategy="auto"``, pairs naming passages outside the corpus,
            an evaluation set that does not fit the corpus, or fewer than 2 pairs left.
    """
    train, source = training_pairs(corpus, config, pairs, pairs_source)
    pseudo = all(map(is_pseudo_query, train))
    pseudo_eval = pseudo and eval_set is None
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
    return PreparedPairs(train, eval_set, source, pseudo=pseudo, pseudo_eval=pseudo_eval)


# --------------------------------------------------------------------------- 2. baseline
def measure_base(
    encoder: SimCSEEncoder,
    indexer: CorpusIndexer,
    eval_set: EvalSet,
    *,
    ks: Sequence[int],
    on_stage: Callable[[str], None],
) -> tuple[Any, dict[str, dict[str, float]], dict[str, float]]:
    """Index the corpus with the base model and evaluate it (stage 2 of :func:`adapt`).

    Returns:
        The retriever (round 1 mines with it), mode -> metrics "before", and the seconds of
        each step (``encode_base_s``, ``evaluate_before_s``).
    """
    t0 = time.perf_counter()
    on_stage(f"encoding {len(indexer.passages)} passages with the base model")
    retriever = indexer.index(encoder)
    timings = {"encode_base_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    before = evaluate_retriever(retriever, eval_set, ks=ks)
    timings["evaluate_before_s"] = time.perf_counter() - t0
    return retriever, before, timings


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
        pairs: Labelled training pairs; ``None`` makes pseudo-queries from the corpus.
        pairs_source: Description of ``pairs`` for the report.
        eval_set: Held-out evaluation queries; ``None`` holds back ``config.eval_fraction`` of
            the training queries.
        overwrite: Replace an existing non-empty ``out``.
        cache_dir: Keep corpus embeddings per model here (reused by later runs).
        show_progress: tqdm bars for encoding and training.
        on_stage: Called with a short message as each stage starts (CLI progress).

    Returns:
        The output folder and the report.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is false (checked before any work).
        ValueError: A corpus too small to mine from, bad pairs, or nothing to evaluate.
    """
    started = time.perf_counter()
    config = config or AdaptConfig()
    out = check_output_dir(out, overwrite=overwrite)
    if pairs is None and config.strategy == "auto":  # also in prepare_pairs; here before all else
        raise ValueError(CORPUS_ONLY_REFUSAL)
    stage = on_stage or (lambda message: logger.info("%s", message))
    corpus = _checked_corpus(corpus, config)
    base_model = encoder.name_or_path

    stage("making training pairs")
    prepared = prepare_pairs(corpus, config, pairs, pairs_source=pairs_source, eval_set=eval_set)
    prepared, validation = hold_back_validation(prepared, config.seed)  # chooses the fusion
    indexer = CorpusIndexer(corpus, cache_dir=cache_dir, show_progress=show_progress)
    with encoder_max_length(encoder, config.encode_max_length):
        retriever, before, timings = measure_base(
            encoder, indexer, prepared.eval_set, ks=config.ks, on_stage=stage
        )
        trained = run_rounds(
            encoder,
            retriever,
            prepared.train,
            config,
            pseudo=prepared.pseudo,
            indexer=indexer,
            on_stage=stage,
        )
        t0 = time.perf_counter()
        after = evaluate_retriever(trained.retriever, prepared.eval_set, ks=config.ks)
        timings["evaluate_after_s"] = time.perf_counter() - t0
        fusion = choose_fusion(trained.retriever, validation, prepared.eval_set, ks=config.ks)
    timings["total_s"] = time.perf_counter() - started
    report = build_report(
        config,
        prepared,
        trained.rounds,
        before,
        after,
        base_model=base_model,
        passages=len(corpus),
        timings=timings,
    )
    report["fusion"] = fusion.to_report()
    _write_output(out, encoder, report, trained.mined, fusion.save)
    logger.info("adapted model and report written to %s", out)
    return AdaptResult(out, report)


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
