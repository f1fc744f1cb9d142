"""The out-of-the-box demo: hybrid search and a short domain adaptation on a sample corpus.

:func:`run_demo` indexes a corpus (by default the bundled bilingual children's-health FAQ, see
``simcse_rag/sample_data/README.md``), runs a few queries in ``dense``, ``bm25`` and ``hybrid``
mode, and adapts the model to the corpus with :func:`simcse_rag.adapt.adapt`, returning the
before/after metrics. It is quiet: each stage's result goes to the ``on_event`` callback as a
:class:`DemoEvent` as soon as the stage ends (the ``simcse-rag demo`` command prints it there and
then, so hits and the base model's numbers show before the slow adaptation).

Fair evaluation: on the bundled corpus the adaptation trains on 312 example questions shipped
with it (``medical_faq_train.tsv``: two per passage, one English and one Chinese, written apart
from the evaluation queries and checked not to overlap them), so all 75 hand-written judged
queries are unseen and serve as the evaluation set. This is the situation of a FAQ bot whose
owners have a log of questions and the answers they were matched to. On a user's corpus (no
judgments, no pairs) the adaptation trains on pseudo-queries made from the corpus, and a share of
them is held back as the evaluation set.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcse_rag.demo_schema import STAGES, DemoConfig, DemoEvent, DemoResult, QueryHits
from simcse_rag.pseudo_queries import pseudo_query_pairs
from simcse_rag.sample import (
    SAMPLE_CORPUS,
    SAMPLE_DIR,
    SAMPLE_NAME,
    SAMPLE_QRELS,
    SAMPLE_QUERIES,
    SAMPLE_TRAIN,
    SampleData,
    load_sample,
)
from simcse_rag.schema import Passage

# The value types and the sample live in their own modules; they stay importable from here,
# where the recipes, benchmarks and tests have always found them.
__all__ = [
    "DEFAULT_QUERY_IDS",
    "MIN_ADAPT_PASSAGES",
    "MODES",
    "SAMPLE_CORPUS",
    "SAMPLE_DIR",
    "SAMPLE_NAME",
    "SAMPLE_QRELS",
    "SAMPLE_QUERIES",
    "SAMPLE_TRAIN",
    "STAGES",
    "DemoConfig",
    "DemoEvent",
    "DemoResult",
    "QueryHits",
    "SampleData",
    "load_sample",
    "run_demo",
]

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("dense", "bm25", "hybrid")
#: Bundled queries shown side by side: a paraphrase (dense finds it, BM25 does not), a query
#: where the words matter (BM25 ranks the answer higher), a Chinese query and a mixed
#: Chinese/English one. The evaluation table covers all 75 queries.
DEFAULT_QUERY_IDS: tuple[str, ...] = ("q31", "q54", "q26", "q46")
#: Smallest corpus the demo adapts on; smaller ones only show search.
MIN_ADAPT_PASSAGES = 20


def run_demo(
    encoder: Any,
    out: str | os.PathLike[str] | None = None,
    config: DemoConfig | None = None,
    *,
    overwrite: bool = False,
    show_progress: bool = False,
    on_stage: Callable[[str], None] | None = None,
    on_event: Callable[[DemoEvent], None] | None = None,
) -> DemoResult:
    """Index a corpus, compare dense / BM25 / hybrid hits, evaluate, adapt the model, evaluate.

    Args:
        encoder: A :class:`~simcse_rag.encoder.SimCSEEncoder`; the adaptation fine-tunes it in
            place.
        out: Folder for the adapted model (with ``report.md`` / ``report.json``); required
            when ``config.adapt`` is true.
        config: Settings (default :class:`DemoConfig`).
        overwrite: Replace a non-empty ``out``.
        show_progress: tqdm bars while encoding and training.
        on_stage: Called with a short message as each stage, or step of the adaptation, starts.
        on_event: Called with a :class:`DemoEvent` as each stage starts and ends; end events
            carry the result so far (hits and "before" metrics come before the adaptation).

    Returns:
        The hits, the metrics before and after adaptation, and where the model was saved.

    Raises:
        ValueError: Bad settings, an unreadable or empty corpus, or ``out`` missing.
        FileExistsError: ``out`` is not empty and ``overwrite`` is false (checked first).
    """
    from simcse_rag.adapt import build_retriever, check_output_dir

    config = config or DemoConfig()
    if config.adapt:
        if out is None:
            raise ValueError("run_demo needs an output folder for the adapted model; pass out=.")
        check_output_dir(out, overwrite=overwrite)
    stages = _Stages(on_event, on_stage)
    stages.start("load", "reading the corpus")
    corpus, name, sample = _load_corpus(config)
    n = len(corpus)
    model = str(getattr(encoder, "name_or_path", ""))
    shown = _shown_queries(config, corpus, sample)
    judged = _judged_eval_set(sample)
    adapt_ok = config.adapt and n >= MIN_ADAPT_PASSAGES
    notes = _notes(config, n, judged is not None)
    result = DemoResult(name, n, _languages(corpus), model, [], notes=notes)
    # Training pairs are made before any slow work, so a corpus without any fails at once.
    pairs, source = _training_pairs(corpus, sample, config.seed) if adapt_ok else ([], "")
    result = stages.done(f"read the corpus: {n} passages", result)

    with tempfile.TemporaryDirectory(prefix="simcse-rag-demo-cache-") as cache_dir:
        # The embedding cache lets the adaptation reuse these vectors for its "before" numbers.
        stages.start("index", f"indexing {n} passages (dense + BM25)")
        retriever = build_retriever(
            corpus, encoder, show_progress=show_progress, cache_dir=cache_dir
        )
        result = stages.done(f"indexed {n} passages (dense + BM25)", result)

        what = f"{len(shown)} queries in dense, bm25 and hybrid mode"
        stages.start("search", f"searching {what}")
        result = dataclasses.replace(result, queries=_search(retriever, shown, config.k))
        result = stages.done(f"searched {what}", result)

        plan = None
        if adapt_ok and out is not None:
            plan = _Adaptation(
                out=Path(out),
                config=_adapt_config(config),
                pairs=pairs,
                pairs_source=source,
                eval_set=judged,
                overwrite=overwrite,
                cache_dir=cache_dir,
                show_progress=show_progress,
            )
        result = _evaluate_before(retriever, judged, plan, stages, result)
        if plan is not None:
            result = _adapt(encoder, corpus, plan, stages, result)
    return result


# --------------------------------------------------------------------------- stages
def _notes(config: DemoConfig, passages: int, judged: bool) -> list[str]:
    """What the demo leaves out on this corpus, and why."""
    if config.adapt and passages < MIN_ADAPT_PASSAGES:
        return [
            f"adaptation skipped: the corpus has {passages} passages, the demo adapts on "
            f"{MIN_ADAPT_PASSAGES} or more"
        ]
    if not config.adapt and not judged:
        return [
            "no evaluation: a user corpus has no judged queries (adaptation holds "
            "back pseudo-queries for that; run without --no-adapt)"
        ]
    return []


def _load_corpus(config: DemoConfig) -> tuple[list[Passage], str, SampleData | None]:
    if config.corpus is None:
        sample = load_sample()
        return sample.corpus, SAMPLE_NAME, sample
    from simcse_rag.corpus import read_corpus

    return read_corpus(config.corpus), str(config.corpus), None


def _shown_queries(
    config: DemoConfig, corpus: Sequence[Passage], sample: SampleData | None
) -> list[QueryHits]:
    """The queries to show, without hits yet."""
    if sample is not None:
        by_text = {" ".join(t.split()).lower(): q for q, t in sample.queries.items()}

        def judged(qid: str, text: str) -> QueryHits:
            rel = frozenset(d for d, g in sample.qrels.get(qid, {}).items() if g >= 1)
            return QueryHits(text, rel, {}, qid, "judged" if rel else "user")

        if not config.queries:
            return [judged(q, sample.queries[q]) for q in DEFAULT_QUERY_IDS]
        return [judged(by_text.get(" ".join(t.split()).lower(), ""), t) for t in config.queries]
    if config.queries:
        return [QueryHits(t, frozenset(), {}) for t in config.queries]
    from simcse_rag.pseudo_queries import make_pseudo_queries

    # Pseudo-queries are a title or a sentence of their passage: an easy, but honest, check.
    pairs = make_pseudo_queries(corpus, max_pairs=config.sampled_queries, seed=config.seed)
    return [QueryHits(p.query, frozenset({p.positive_id}), {}, "", "pseudo") for p in pairs]


def _search(retriever: Any, shown: Sequence[QueryHits], k: int) -> list[QueryHits]:
    texts = [q.query for q in shown]
    by_mode = {mode: retriever.search_batch(texts, k=k, mode=mode) for mode in MODES}
    return [
        dataclasses.replace(q, hits={m: by_mode[m][i] for m in MODES}) for i, q in enumerate(shown)
    ]


class _Stages:
    """Sends :func:`run_demo`'s start and end events and times each stage."""

    def __init__(
        self,
        on_event: Callable[[DemoEvent], None] | None,
        on_stage: Callable[[str], None] | None,
    ) -> None:
        self._on_event = on_event
        self._on_stage = on_stage
        self._stage = ""
        self._started = time.perf_counter()
        self._timings: dict[str, float] = {}

    def start(self, stage: str, message: str) -> None:
        """``stage`` starts, or its next step when it is already running."""
        if stage != self._stage:
            self._stage, self._started = stage, time.perf_counter()
        if self._on_stage is not None:
            self._on_stage(message)
        if self._on_event is not None:
            self._on_event(DemoEvent(stage, message))
        if self._on_stage is None and self._on_event is None:
            logger.info("%s", message)

    def done(self, message: str, result: DemoResult) -> DemoResult:
        """The running stage ended with ``result``: record its time and send the end event."""
        seconds = time.perf_counter() - self._started
        self._timings[f"{self._stage}_s"] = round(seconds, 1)
        result = dataclasses.replace(result, timings=dict(self._timings))
        if self._on_event is not None:
            self._on_event(DemoEvent(self._stage, message, True, seconds, result))
        self._stage = ""
        return result


@dataclass(frozen=True)
class _Adaptation:
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


def _adapt_config(config: DemoConfig) -> Any:
    from simcse_rag.adapt import AdaptConfig

    return AdaptConfig(
        max_steps=config.max_steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        train_max_length=config.train_max_length,
        # Evaluate at the model's own length, like the search above, and reuse its vectors.
        encode_max_length=None,
        ks=(10,),
        seed=config.seed,
    )


def _judged_eval_set(sample: SampleData | None) -> Any:
    """The bundled sample's judged queries as an :class:`~simcse_rag.adapt.EvalSet`, or None."""
    if sample is None:
        return None
    from simcse_rag.adapt import EvalSet

    return EvalSet(
        dict(sample.queries),
        {q: dict(d) for q, d in sample.qrels.items()},
        f"{len(sample.qrels)} hand-written judged queries (never trained on)",
    )


def _training_pairs(
    corpus: Sequence[Passage], sample: SampleData | None, seed: int
) -> tuple[list[Any], str]:
    if sample is not None and sample.train_pairs:
        source = (
            f"example questions bundled with the sample ({SAMPLE_TRAIN.name}; "
            "none is an evaluation query)"
        )
        return sample.train_pairs, source
    return pseudo_query_pairs(corpus, seed=seed)


def _evaluate_before(
    retriever: Any, judged: Any, plan: _Adaptation | None, stages: _Stages, result: DemoResult
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
        before=_metrics(before),
    )
    return stages.done(f"evaluated the base model on {what}", result)


def _adapt(
    encoder: Any, corpus: list[Passage], plan: _Adaptation, stages: _Stages, result: DemoResult
) -> DemoResult:
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
        before=_metrics(report["before"]),
        after=_metrics(report["after"]),
        adaptation=report,
        adapted_model=done.output_dir,
        notes=[*result.notes, *(f"warning: {w}" for w in report.get("warnings", []))],
    )
    return stages.done(
        f"adapted the model: {steps} steps on {report['training']['pairs']} pairs", result
    )


def _languages(corpus: Sequence[Passage]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in corpus:
        lang = p.metadata.get("lang")
        if isinstance(lang, str):
            counts[lang] = counts.get(lang, 0) + 1
    return counts


def _metrics(table: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    return {
        mode: {m: float(v) for m, v in row.items() if m != "queries"} for mode, row in table.items()
    }
