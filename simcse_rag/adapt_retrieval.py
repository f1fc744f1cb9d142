"""Retrieval for domain adaptation: index a corpus, score it, mine hard negatives with it.

Each model of an adaptation (the base, then the model of every round) indexes the corpus with
:class:`CorpusIndexer`; the retriever is evaluated with :func:`evaluate_retriever` and mines the
next round's negatives with :func:`mine_with_retriever`. :func:`encoder_max_length` sets the
shorter token limit these encode stages run at.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simcse_rag import _io
from simcse_rag.adapt_config import AdaptConfig
from simcse_rag.adapt_questions import QuestionPairs, RoundTrip, pairs_from_questions
from simcse_rag.adapt_report import MODES
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.mining import MiningConfig, MiningResult, mine_hard_negatives
from simcse_rag.pairs import TrainingPair
from simcse_rag.schema import Passage

if TYPE_CHECKING:
    from simcse_rag.datasets import QuerySet as EvalSet

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def encoder_max_length(encoder: SimCSEEncoder, max_length: int | None) -> Iterator[None]:
    """Encode at ``max_length`` tokens inside the block, then restore the encoder's own limit.

    Args:
        encoder: The encoder whose ``max_length`` is set.
        max_length: The limit inside the block; ``None`` keeps the encoder's.
    """
    previous = encoder.max_length
    if max_length is not None:
        encoder.max_length = max_length
    try:
        yield
    finally:
        encoder.max_length = previous


def build_retriever(
    passages: Sequence[Passage],
    encoder: SimCSEEncoder,
    *,
    show_progress: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """A :class:`~simcse_rag.index.hybrid.HybridRetriever` over ``passages`` (exact dense index).

    ``cache_dir``: a folder where the corpus embeddings of this model are kept between runs.
    """
    from simcse_rag.index.hybrid import HybridConfig, HybridRetriever

    retriever = HybridRetriever(encoder, HybridConfig(dense_index="flat"))
    cache = Path(cache_dir) / retriever.fingerprint if cache_dir is not None else None
    if cache is not None:
        taken = retriever.load_cache(cache)
        logger.info("embedding cache %s: %d vectors reused", cache, taken)
    retriever.add(passages, show_progress=show_progress)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        _io.atomic_write_dir(cache, retriever.cache.write)
    return retriever


@dataclass(frozen=True)
class CorpusIndexer:
    """Indexes one corpus with each model an adaptation produces (:func:`build_retriever`).

    Attributes:
        passages: The corpus.
        cache_dir: Keep corpus embeddings per model here (reused by later runs).
        show_progress: tqdm bars while encoding.
    """

    passages: Sequence[Passage]
    cache_dir: str | os.PathLike[str] | None = None
    show_progress: bool = False

    def index(self, encoder: SimCSEEncoder) -> Any:
        """A hybrid retriever over the corpus, encoded with ``encoder``."""
        return build_retriever(
            self.passages, encoder, show_progress=self.show_progress, cache_dir=self.cache_dir
        )


def evaluate_retriever(
    retriever: Any, eval_set: EvalSet, *, ks: Sequence[int] = (10, 100)
) -> dict[str, dict[str, float]]:
    """nDCG / recall / MRR of the retriever on ``eval_set`` in dense, bm25 and hybrid modes."""
    from simcse_rag.evaluation.retrieval import evaluate_run

    qids = sorted(eval_set.qrels)
    texts = [eval_set.queries[q] for q in qids]
    depth = max(ks)
    results = {}
    for mode in MODES:
        hits = retriever.search_batch(texts, k=depth, mode=mode, candidates=max(100, depth))
        run = {q: [h.id for h in hs] for q, hs in zip(qids, hits, strict=True)}
        results[mode] = evaluate_run(run, eval_set.qrels, ks=ks)
    return results


def mine_with_retriever(
    retriever: Any, pairs: Sequence[TrainingPair], config: MiningConfig
) -> MiningResult:
    """Mine hard negatives for ``pairs`` with a hybrid retriever (candidates and dense scores)."""
    texts = {p.id: p.text for p in retriever.passages}

    def search(queries: Sequence[str]) -> list[list[str]]:
        hits = retriever.search_batch(
            list(queries), k=config.range_max, mode=config.mode, candidates=config.candidates
        )
        return [[h.id for h in hs] for hs in hits]

    def score(
        queries: Sequence[str],
        id_lists: Sequence[Sequence[str]],
        positives: Sequence[tuple[str, str]],
    ) -> tuple[list[np.ndarray], np.ndarray]:
        unique = list(dict.fromkeys(queries))
        qvec = dict(zip(unique, retriever.encode_queries(unique), strict=True))
        pos_texts = [texts[pid] if pid else text for pid, text in positives]
        pos_vecs = retriever.embed_passages(pos_texts)
        cand_scores = []
        for q, ids in zip(queries, id_lists, strict=True):
            vecs = retriever.embed_passages([texts[i] for i in ids]) if ids else None
            cand_scores.append(vecs @ qvec[q] if vecs is not None else np.zeros(0))
        pos_scores = np.einsum("ij,ij->i", np.stack([qvec[q] for q in queries]), pos_vecs)
        return cand_scores, pos_scores

    return mine_hard_negatives(pairs, search=search, score=score, texts=texts, config=config)


def measure_base(
    encoder: SimCSEEncoder,
    indexer: CorpusIndexer,
    eval_set: EvalSet,
    *,
    ks: Sequence[int],
    on_stage: Callable[[str], None],
    retriever: Any | None = None,
) -> tuple[Any, dict[str, dict[str, float]], dict[str, float]]:
    """Index the corpus with the base model and evaluate it (stage 2 of
    :func:`simcse_rag.adapt.adapt`).

    Args:
        encoder: The base model.
        indexer: Indexes the corpus.
        eval_set: The held-out queries.
        ks: Metric cut-offs.
        on_stage: Called with a short message as each step starts.
        retriever: The corpus already indexed with the base model (the question routes index
            it before stage 1); ``None`` indexes it here.

    Returns:
        The retriever (round 1 mines with it), mode -> metrics "before", and the seconds of
        each step (``encode_base_s`` when it indexed, ``evaluate_before_s``).
    """
    timings = {}
    if retriever is None:
        retriever, timings = index_base(encoder, indexer, on_stage=on_stage)
    t0 = time.perf_counter()
    before = evaluate_retriever(retriever, eval_set, ks=ks)
    timings["evaluate_before_s"] = time.perf_counter() - t0
    return retriever, before, timings


def index_base(
    encoder: SimCSEEncoder, indexer: CorpusIndexer, *, on_stage: Callable[[str], None]
) -> tuple[Any, dict[str, float]]:
    """The corpus indexed with the base model, and ``{"encode_base_s": seconds}``."""
    t0 = time.perf_counter()
    on_stage(f"encoding {len(indexer.passages)} passages with the base model")
    retriever = indexer.index(encoder)
    return retriever, {"encode_base_s": time.perf_counter() - t0}


def label_stage(
    base: Any,
    config: AdaptConfig,
    queries: Sequence[str] | Mapping[str, str] | None,
    generated: Sequence[TrainingPair] | None,
    eval_set: EvalSet | None,
    *,
    on_stage: Callable[[str], None],
    round_trip: RoundTrip | None = None,
) -> tuple[QuestionPairs, dict[str, float]]:
    """Make pairs from questions without labels with the corpus indexed by the base model.

    Args:
        base: The base retriever (:func:`index_base`).
        config: Settings (label rule, round-trip ``k``, batch size).
        queries: Question logs to label.
        generated: Generated pairs to check.
        eval_set: The user's evaluation queries (for the label-precision estimate).
        on_stage: Called with a short message as each step starts.
        round_trip: Filters the generated pairs; ``None``: the base retriever's round trip.

    Returns:
        The pairs made (:func:`~simcse_rag.adapt_questions.pairs_from_questions`) and
        ``{"label_questions_s": seconds}``.
    """
    on_stage("labelling questions with the base retriever")
    t0 = time.perf_counter()
    questions = pairs_from_questions(
        base,
        queries=queries,
        generated=generated,
        rule=config.label_rule,
        round_trip_k=config.round_trip_k,
        eval_set=eval_set,
        min_pairs=config.batch_size,
        round_trip=round_trip,
    )
    return questions, {"label_questions_s": time.perf_counter() - t0}
