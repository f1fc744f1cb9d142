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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simcse_rag.demo_adapt import (
    Adaptation,
    adapt_config,
    evaluate_before,
    judged_eval_set,
    run_adaptation,
    training_pairs,
)
from simcse_rag.demo_schema import STAGES, DemoConfig, DemoEvent, DemoResult, QueryHits
from simcse_rag.demo_stages import DemoStages
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
    from simcse_rag.adapt import check_output_dir

    config = config or DemoConfig()
    if config.adapt:
        if out is None:
            raise ValueError("run_demo needs an output folder for the adapted model; pass out=.")
        check_output_dir(out, overwrite=overwrite)
    stages = DemoStages(on_event, on_stage)
    stages.start("load", "reading the corpus")
    corpus, name, sample = _load_corpus(config)
    n = len(corpus)
    model = str(getattr(encoder, "name_or_path", ""))
    shown = _shown_queries(config, corpus, sample)
    judged = judged_eval_set(sample)
    adapt_ok = config.adapt and n >= MIN_ADAPT_PASSAGES
    notes = _notes(config, n, judged is not None)
    result = DemoResult(name, n, _languages(corpus), model, [], notes=notes)
    # Training pairs are made before any slow work, so a corpus without any fails at once.
    pairs, source = training_pairs(corpus, sample, config.seed) if adapt_ok else ([], "")
    result = stages.done(f"read the corpus: {n} passages", result)

    with tempfile.TemporaryDirectory(prefix="simcse-rag-demo-cache-") as cache_dir:
        retriever, result = _index_and_search(
            encoder,
            corpus,
            shown,
            config.k,
            stages,
            result,
            cache_dir=cache_dir,
            show_progress=show_progress,
        )
        plan = None
        if adapt_ok and out is not None:
            plan = Adaptation(
                out=Path(out),
                config=adapt_config(config),
                pairs=pairs,
                pairs_source=source,
                eval_set=judged,
                overwrite=overwrite,
                cache_dir=cache_dir,
                show_progress=show_progress,
            )
        result = evaluate_before(retriever, judged, plan, stages, result)
        if plan is not None:
            result = run_adaptation(encoder, corpus, plan, stages, result)
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


def _index_and_search(
    encoder: Any,
    corpus: list[Passage],
    shown: Sequence[QueryHits],
    k: int,
    stages: DemoStages,
    result: DemoResult,
    *,
    cache_dir: str,
    show_progress: bool,
) -> tuple[Any, DemoResult]:
    """The index and search stages: the hybrid retriever, and ``result`` with the shown hits."""
    from simcse_rag.adapt import build_retriever

    n = len(corpus)
    # The embedding cache lets the adaptation reuse these vectors for its "before" numbers.
    stages.start("index", f"indexing {n} passages (dense + BM25)")
    retriever = build_retriever(corpus, encoder, show_progress=show_progress, cache_dir=cache_dir)
    result = stages.done(f"indexed {n} passages (dense + BM25)", result)

    what = f"{len(shown)} queries in dense, bm25 and hybrid mode"
    stages.start("search", f"searching {what}")
    result = dataclasses.replace(result, queries=_search(retriever, shown, k))
    return retriever, stages.done(f"searched {what}", result)


def _search(retriever: Any, shown: Sequence[QueryHits], k: int) -> list[QueryHits]:
    texts = [q.query for q in shown]
    by_mode = {mode: retriever.search_batch(texts, k=k, mode=mode) for mode in MODES}
    return [
        dataclasses.replace(q, hits={m: by_mode[m][i] for m in MODES}) for i, q in enumerate(shown)
    ]


def _languages(corpus: Sequence[Passage]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in corpus:
        lang = p.metadata.get("lang")
        if isinstance(lang, str):
            counts[lang] = counts.get(lang, 0) + 1
    return counts
