"""Domain adaptation: training pairs -> mined hard negatives -> fine-tuning -> before/after report.

The pipeline (:func:`adapt`):

1. **Pairs**: labelled (query, positive) pairs when the user has them (BEIR qrels or a TSV,
   :mod:`simcse_rag.pairs`), else pseudo-queries made from the corpus
   (:mod:`simcse_rag.pseudo_queries`). Unsupervised SimCSE on the target corpus alone barely
   moves retrieval (sentence-transformers' domain-adaptation tables), (query, passage) pairs with
   mined negatives do (GPL, Wang et al. 2022, https://arxiv.org/abs/2112.07577).
2. **Held-out evaluation**: ``eval_set`` when given; otherwise a seeded share of the training
   *queries* is held back (all pairs of a held-out query leave training).
3. **Mining** with the current model + BM25 (:class:`~simcse_rag.index.hybrid.HybridRetriever`)
   and false-negative filters (:mod:`simcse_rag.mining`).
4. **Fine-tuning** with the supervised SimCSE loss (in-batch + mined negatives) by
   :func:`simcse_rag.trainer.train`; optional further rounds re-mine with the adapted model.
5. **Report**: dense, BM25 and hybrid metrics before and after on the held-out queries.

The output folder is a model folder (``SentenceTransformer(out)`` loads it) that also holds
``report.json``, ``report.md``, ``report.png`` (with matplotlib) and ``mined.jsonl``. It is
written to a temporary sibling and renamed into place, so an existing model is never lost.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simcse_rag import _io
from simcse_rag.adapt_report import metric_deltas, write_chart, write_json, write_markdown
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.mining import MiningConfig, MiningResult, mine_hard_negatives
from simcse_rag.pairs import TrainingPair, split_queries
from simcse_rag.pseudo_queries import (
    STRATEGIES,
    is_pseudo_query,
    make_pseudo_queries,
    negative_view,
    pseudo_query_strategy,
)
from simcse_rag.schema import Passage

logger = logging.getLogger(__name__)

MODES = ("dense", "bm25", "hybrid")
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_PNG = "report.png"
MINED_JSONL = "mined.jsonl"
#: Why corpus-only adaptation needs an explicit strategy (measured with benchmarks/adapt.py).
CORPUS_ONLY_REFUSAL = (
    "No labelled pairs given. Without them adaptation gains little: on our benchmarks "
    "--strategy keywords lifted TAT-QA finance dense nDCG@10 by 2.8-3.0 points but hybrid by "
    "only 0.9-1.4, and --strategy title moved LiveQA medical by -0.9 to +1.7, so it does not "
    "run by default. Give labelled pairs (--pairs FILE or "
    "--train-data BEIR_DIR), or choose --strategy keywords|title|ict|crop and check the result "
    "on real queries with --eval-data."
)
#: Share of the fine-tuned weights kept for pseudo-query adaptation (the rest is the base model).
#: Dense / hybrid nDCG@10 on held-out real questions (benchmarks/adapt.py, 256-token encoding),
#: by weight 1 / 0.7 / 0.5 / 0.3 of one keywords run on TAT-QA (base 44.2 / 53.4):
#: 43.9 / 53.1, 45.5 / 54.4, 45.9 / 54.8, 46.9 / 55.0. LiveQA (base 70.4 / 66.0), weight 0.5 / 0.3:
#: keywords 59.7 / 63.2, 65.6 / 63.7; titles 67.6 / 65.0, 69.0 / 64.4.
PSEUDO_MERGE_WEIGHT = 0.3
#: Mining candidates ranked 1..N are never negatives of pseudo-queries: a query made from one
#: passage finds the other parts of its document first (on LiveQA, 40% of the negatives mined for
#: titles were sections of the positive's own article), and real questions want those too.
#: Measured at merge weight 0.3 (dense / hybrid nDCG@10, benchmarks/adapt.py): LiveQA titles
#: 69.0 / 64.4 -> 70.8 / 66.1 (base 70.4 / 66.0); TAT-QA keywords 46.9 / 54.8 -> 47.2 / 54.9.
PSEUDO_RANGE_MIN = 10
#: Peak learning rate with labelled pairs (100 steps of 32). Dense / hybrid nDCG@10 on held-out
#: real questions (benchmarks/adapt.py --lr): TAT-QA (1,141 pairs) 5e-5 57.6 / 62.4, 1e-4
#: 60.0 / 63.5, 2e-4 62.0 / 64.3; LiveQA (490 pairs, base 70.4 / 66.0) 5e-5 75.1 / 70.1, 1e-4
#: 74.2 / 70.7 (48 questions: +-2 is noise), 2e-4 67.3 / 69.0: too high for a small pair set.
#: On LiveQA's other query split (522 pairs, base 64.8 / 60.6) 1e-4 cost dense: 5e-5 66.9 / 61.9,
#: 1e-4 63.7 / 61.8. Not a matter of passes: on 400 TAT-QA pairs (8 passes in 100 steps) 1e-4
#: still wins, 53.8 / 60.9 against 51.3 / 59.8. Where the base is already strong, merge instead
#: (:data:`STRONG_BASE_MERGE_WEIGHT`).
LABELLED_LEARNING_RATE = 1e-4
#: Merge weight advised when a labelled run falls below a base that was already strong on the
#: domain. Dense / hybrid nDCG@10 of the 1e-4 models merged at weight 1 / 0.85 / 0.7 / 0.5:
#: LiveQA (base 70.4 / 66.0) 74.2 / 70.7, 74.0 / 70.3, 75.3 / 69.7, 76.2 / 69.6; LiveQA's other
#: split (base 64.8 / 60.6) 63.7 / 61.8, 64.7 / 61.9, 65.9 / 62.2, 68.3 / 63.0. Where the base
#: is weak it costs: TAT-QA (base 44.2 / 53.4) 60.0 / 63.5, 60.0 / 63.1, 59.1 / 62.5,
#: 57.8 / 61.8. So labelled runs keep weight 1 by default.
STRONG_BASE_MERGE_WEIGHT = 0.5
#: Peak learning rate with pseudo-queries: :data:`PSEUDO_MERGE_WEIGHT` and
#: :data:`PSEUDO_RANGE_MIN` were tuned with it (TAT-QA keywords at 1e-4: 47.0 / 54.7, the same
#: as 47.2 / 54.9 at 5e-5).
PSEUDO_LEARNING_RATE = 5e-5
#: Fewest passages a corpus needs beyond the negatives asked for (positive + in-batch partners).
_MIN_EXTRA_PASSAGES = 8


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of :func:`adapt`.

    Defaults fit a 20k-passage corpus in 30 minutes on 2 CPU cores: the corpus is encoded twice
    (base model for mining and "before", adapted model for "after") at 128 tokens, plus 100
    steps of 32 pairs with one mined negative each. Measured with ``benchmarks/adapt.py
    --timing-only``: 26.1 min for 20,000 passages (encode 551 s, mine 47 s, train 488 s,
    re-encode 473 s).

    Attributes:
        strategy: Pseudo-query strategy when no labelled pairs are given: ``keywords``,
            ``title``, ``ict`` or ``crop`` (:mod:`simcse_rag.pseudo_queries`). ``auto`` (the
            default) refuses to adapt without labelled pairs: the best strategies measured gain
            little (``keywords`` about 3 dense points where BM25 beats the model, ``title``
            within noise where the model is already strong; see :data:`CORPUS_ONLY_REFUSAL`).
        max_pairs: Most training pairs used (pseudo-queries made; labelled pairs sampled).
        eval_fraction: Share of training queries held back when no ``eval_set`` is given.
        mining: Hard-negative mining settings.
        rounds: Mine + train rounds; round ``r > 1`` re-mines with the model of round ``r - 1``.
        max_steps: Optimizer steps per round.
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
            (default): :data:`PSEUDO_MERGE_WEIGHT` for pseudo-queries, ``1.0`` for labelled
            pairs (measured: merging lifts pseudo-query adaptation and costs labelled adaptation
            0.1-1.7 points).
        pseudo_range_min: For pseudo-query pairs, mining skips at least this many best-ranked
            candidates, but at most a tenth of the corpus and never so many that fewer than
            ``num_negatives`` stay within ``range_max`` (``range_min`` of :attr:`mining` is
            raised to it; see :data:`PSEUDO_RANGE_MIN`). Labelled pairs use :attr:`mining` as
            given.
        ks: Metric cut-offs.
        seed: Seed for pseudo-queries, splits, mining and training.
    """

    strategy: str = "auto"
    max_pairs: int = 4000
    eval_fraction: float = 0.3
    mining: MiningConfig = field(default_factory=lambda: MiningConfig(num_negatives=1))
    rounds: int = 1
    max_steps: int = 100
    batch_size: int = 32
    learning_rate: float | None = None
    warmup_ratio: float = 0.1
    train_max_length: int = 128
    mini_batch_size: int | None = 16
    encode_max_length: int | None = 128
    merge_weight: float | None = None
    pseudo_range_min: int = PSEUDO_RANGE_MIN
    ks: tuple[int, ...] = (10, 100)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}.")
        for name in ("max_pairs", "rounds", "max_steps", "train_max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"AdaptConfig.{name} must be a positive integer, got {value!r}.")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ValueError(f"AdaptConfig.batch_size must be >= 2, got {self.batch_size!r}.")
        mini = self.mini_batch_size
        if mini is not None and (isinstance(mini, bool) or not isinstance(mini, int) or mini <= 0):
            raise ValueError(f"mini_batch_size must be a positive integer or None, got {mini!r}.")
        if self.encode_max_length is not None and (
            not isinstance(self.encode_max_length, int) or self.encode_max_length <= 0
        ):
            raise ValueError(
                f"encode_max_length must be a positive integer or None, "
                f"got {self.encode_max_length!r}."
            )
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
        skip = self.pseudo_range_min
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise ValueError(f"pseudo_range_min must be an integer >= 0, got {skip!r}.")
        if not self.ks or any(not isinstance(k, int) or k <= 0 for k in self.ks):
            raise ValueError(f"ks must be positive integers, got {self.ks!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (saved in the report)."""
        return dataclasses.asdict(self)


# The held-out queries adapt() evaluates on: the one query-set type, under its older name.
from simcse_rag.datasets import QuerySet as EvalSet  # noqa: E402


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


def _sample(pairs: list[TrainingPair], limit: int, seed: int) -> list[TrainingPair]:
    if len(pairs) <= limit:
        return pairs
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(pairs), size=limit, replace=False))
    return [pairs[i] for i in keep]


# --------------------------------------------------------------------------- retrieval
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


# --------------------------------------------------------------------------- the pipeline
def _training_examples(
    result: MiningResult,
    pairs: Sequence[TrainingPair],
    corpus: Sequence[Passage],
    seed: int,
) -> list[tuple[str, str, list[str]]]:
    """``(query, positive, negatives)`` triplets.

    Negatives of pseudo-query pairs take the form the pair's strategy gives its positive
    (:func:`simcse_rag.pseudo_queries.negative_view`); labelled pairs keep whole passages.
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
        examples.append((e.query, e.positive, negatives))
    return examples


def _train_round(
    encoder: SimCSEEncoder,
    examples: list[tuple[str, str, list[str]]],
    config: AdaptConfig,
    learning_rate: float,
    work: Path,
    round_no: int,
    show_progress: bool,
) -> dict[str, Any]:
    from simcse_rag.trainer import TrainingConfig, train

    # Pairs of one query may get different numbers of negatives; the trainer takes any count.
    tconfig = TrainingConfig(
        max_steps=config.max_steps,
        batch_size=min(config.batch_size, len(examples)),
        learning_rate=learning_rate,
        warmup_ratio=config.warmup_ratio,
        max_length=config.train_max_length,
        mini_batch_size=config.mini_batch_size,
        checkpoint_steps=config.max_steps,
        eval_steps=config.max_steps,
        seed=config.seed + round_no,
    )
    result = train(
        encoder,
        examples,
        tconfig,
        output_dir=work / f"round{round_no}",
        show_progress=show_progress,
    )
    losses = result.losses
    return {
        "steps": result.global_step,
        "first_loss": round(losses[0], 4) if losses else None,
        "final_loss": round(float(np.mean(losses[-10:])), 4) if losses else None,
        "seconds": round(result.seconds, 1),
        "training_config": tconfig.to_dict(),
    }


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
    if pairs is None and config.strategy == "auto":
        raise ValueError(CORPUS_ONLY_REFUSAL)
    stage = on_stage or (lambda message: logger.info("%s", message))
    corpus = list(corpus)
    needed = config.mining.num_negatives + _MIN_EXTRA_PASSAGES
    if len(corpus) < needed:
        raise ValueError(
            f"The corpus has {len(corpus)} passages; mining {config.mining.num_negatives} "
            f"negatives needs at least {needed}. Add passages or lower num_negatives."
        )
    ids = {p.id for p in corpus}
    if len(ids) != len(corpus):
        raise ValueError("Corpus passage ids must be unique.")
    base_name = encoder.name_or_path
    model_max_length = encoder.max_length
    timings: dict[str, float] = {}

    # 1. training pairs (and held-out evaluation queries)
    stage("making training pairs")
    if pairs is None:
        strategy = config.strategy
        train_pairs = make_pseudo_queries(
            corpus, strategy=strategy, max_pairs=config.max_pairs, seed=config.seed
        )
        source = f"pseudo-queries ({strategy}) from the corpus"
    else:
        train_pairs = list(pairs)
        if not train_pairs:
            raise ValueError("No training pairs given.")
        source = pairs_source or "labelled pairs"
        unknown = sorted({p.positive_id for p in train_pairs if p.positive_id} - ids)
        if unknown:
            raise ValueError(
                f"{len(unknown)} training pairs name passages that are not in the corpus "
                f"(e.g. {unknown[:5]}); is --corpus the matching corpus?"
            )
    # Pseudo-query pairs (ours, or made by the caller such as the demo on a user corpus) get
    # negatives in their positives' form (_training_examples); labelled pairs whole passages.
    pseudo = all(map(is_pseudo_query, train_pairs))
    merge_weight = config.merge_weight
    if merge_weight is None:
        merge_weight = PSEUDO_MERGE_WEIGHT if pseudo else 1.0
    learning_rate = config.learning_rate
    if learning_rate is None:
        learning_rate = PSEUDO_LEARNING_RATE if pseudo else LABELLED_LEARNING_RATE
    pseudo_eval = pseudo and eval_set is None
    if eval_set is None:
        train_pairs, eval_set = hold_out(
            train_pairs, eval_fraction=config.eval_fraction, seed=config.seed, source=source
        )
    else:
        _check_eval_set(eval_set, ids)
        # A query of the evaluation set must never be trained on (by id or by text).
        held_texts = {" ".join(t.split()).lower() for t in eval_set.queries.values()}
        train_pairs = [
            p
            for p in train_pairs
            if p.query_id not in eval_set.qrels
            and " ".join(p.query.split()).lower() not in held_texts
        ]
    train_pairs = _sample(train_pairs, config.max_pairs, config.seed)
    if len(train_pairs) < 2:
        raise ValueError(
            f"Only {len(train_pairs)} training pair(s) left after holding out evaluation "
            "queries; give more pairs or a separate --eval-data."
        )

    # 2. base model: index the corpus, evaluate "before"
    if config.encode_max_length is not None:
        encoder.max_length = config.encode_max_length
    t0 = time.perf_counter()
    stage(f"encoding {len(corpus)} passages with the base model")
    retriever = build_retriever(corpus, encoder, show_progress=show_progress, cache_dir=cache_dir)
    timings["encode_base_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    before = evaluate_retriever(retriever, eval_set, ks=config.ks)
    timings["evaluate_before_s"] = time.perf_counter() - t0

    # 3-4. rounds of mining + training (then merge with the base weights)
    # At most a tenth of the corpus is skipped, so a small corpus keeps some hard negatives,
    # and the rank window keeps room for num_negatives.
    window = config.mining.range_max - config.mining.num_negatives
    skip = min(config.pseudo_range_min, len(corpus) // 10, window)
    pseudo_skip = max(config.mining.range_min, skip)
    base_state = base_weights(encoder) if merge_weight < 1.0 else None
    rounds: list[dict[str, Any]] = []
    last_mined: MiningResult | None = None
    work = out.parent / f".{out.name}.work-{uuid.uuid4().hex[:8]}"
    try:
        for r in range(1, config.rounds + 1):
            t0 = time.perf_counter()
            stage(f"round {r}: mining hard negatives for {len(train_pairs)} pairs")
            mining = dataclasses.replace(config.mining, seed=config.mining.seed + r - 1)
            if pseudo:
                mining = dataclasses.replace(mining, range_min=pseudo_skip)
            last_mined = mine_with_retriever(retriever, train_pairs, mining)
            mine_s = time.perf_counter() - t0
            stage(f"round {r}: fine-tuning for {config.max_steps} steps")
            encoder.max_length = model_max_length
            trained = _train_round(
                encoder,
                _training_examples(last_mined, train_pairs, corpus, config.seed + r),
                config,
                learning_rate,
                work,
                r,
                show_progress,
            )
            if base_state is not None and r == config.rounds:
                merge_with_base(encoder, base_state, merge_weight)
            if config.encode_max_length is not None:
                encoder.max_length = config.encode_max_length
            t0 = time.perf_counter()
            stage(f"round {r}: encoding {len(corpus)} passages with the adapted model")
            retriever = build_retriever(
                corpus, encoder, show_progress=show_progress, cache_dir=cache_dir
            )
            rounds.append(
                {
                    "mining": {**last_mined.stats(), "range_min": mining.range_min},
                    "mining_s": round(mine_s, 1),
                    "train": trained,
                    "encode_s": round(time.perf_counter() - t0, 1),
                }
            )
        t0 = time.perf_counter()
        after = evaluate_retriever(retriever, eval_set, ks=config.ks)
        timings["evaluate_after_s"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        encoder.max_length = model_max_length

    timings["total_s"] = time.perf_counter() - started
    report = {
        "base_model": base_name,
        "corpus": {"passages": len(corpus)},
        "training": {
            "source": source,
            "pairs": len(train_pairs),
            "queries": len({p.query_id for p in train_pairs}),
            "merge_weight": merge_weight,
            "learning_rate": learning_rate,
        },
        "held_out": {
            "source": eval_set.source,
            "queries": len(eval_set.qrels),
            "query_ids": sorted(eval_set.qrels),
        },
        "config": config.to_dict(),
        "rounds": rounds,
        "before": before,
        "after": after,
        "delta": metric_deltas(before, after),
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "warnings": adaptation_warnings(
            before, after, pseudo_eval=pseudo_eval, merge_weight=merge_weight
        ),
    }
    _write_output(out, encoder, report, last_mined)
    logger.info("adapted model and report written to %s", out)
    return AdaptResult(out, report)


def base_weights(encoder: SimCSEEncoder) -> dict[str, Any]:
    """A CPU copy of the encoder's floating-point weights (for :func:`merge_with_base`)."""
    return {
        k: v.detach().to("cpu", copy=True)
        for k, v in encoder.model.state_dict().items()
        if v.is_floating_point()
    }


def merge_with_base(encoder: SimCSEEncoder, base: Mapping[str, Any], weight: float) -> None:
    """Move the encoder's weights to ``base + weight * (current - base)``, in place.

    Fine-tuning on pseudo-queries teaches the model the corpus' terms but also pulls it away
    from what it knew; averaging the weights keeps much of both (WiSE-FT, Wortsman et al. 2022,
    https://arxiv.org/abs/2109.01903): on TAT-QA keywords, the model merged at weight 0.3 beats
    both the base and the fine-tuned model (:data:`PSEUDO_MERGE_WEIGHT`).
    """
    import torch

    with torch.no_grad():
        for name, tensor in encoder.model.state_dict().items():
            if name in base:
                tensor.copy_(torch.lerp(base[name].to(tensor.device), tensor, weight))


def adaptation_warnings(
    before: Mapping[str, Mapping[str, float]],
    after: Mapping[str, Mapping[str, float]],
    *,
    pseudo_eval: bool,
    merge_weight: float = 1.0,
) -> list[str]:
    """What a user must know before trusting or deploying the adapted model.

    Args:
        before: Mode -> metrics of the base model.
        after: Mode -> metrics of the adapted model.
        pseudo_eval: The evaluation queries are held-back pseudo-queries (no labels anywhere).
        merge_weight: The run's merge weight; above :data:`STRONG_BASE_MERGE_WEIGHT`, a fall
            comes with the advice to merge more of the base back in.

    Returns:
        One sentence per warning (empty when there is nothing to say).
    """
    out = []
    if pseudo_eval:
        out.append(
            "evaluated on held-back pseudo-queries, the same kind of text the model trained on: "
            "the numbers show fit to that task, not gains on real questions (on TAT-QA tables, "
            "ICT pseudo-queries cut real-question dense nDCG@10 from 44.2 to 26.8); evaluate "
            "with real queries (--eval-data) before deploying"
        )
    for mode in ("dense", "hybrid"):
        b = before.get(mode, {}).get("ndcg@10")
        a = after.get(mode, {}).get("ndcg@10")
        if b is not None and a is not None and a < b:
            fix = "keep the base model for this corpus"
            if merge_weight > STRONG_BASE_MERGE_WEIGHT:
                fix = (
                    f"rerun with --merge-weight {STRONG_BASE_MERGE_WEIGHT} to keep more of the "
                    f"base model, or {fix}"
                )
            out.append(
                f"{mode} nDCG@10 fell from {100 * b:.1f} to {100 * a:.1f} on the evaluation "
                f"queries: {fix}"
            )
    return out


def _check_eval_set(eval_set: EvalSet, ids: set[str]) -> None:
    missing_q = sorted(set(eval_set.qrels) - set(eval_set.queries))
    if missing_q:
        raise ValueError(
            f"{len(missing_q)} evaluation qrels name unknown queries (e.g. {missing_q[:5]})."
        )
    judged = {d for docs in eval_set.qrels.values() for d in docs}
    if not judged & ids:
        raise ValueError(
            "No evaluation judgment names a corpus passage; is --eval-data for this --corpus?"
        )
    empty = sorted(q for q in eval_set.qrels if not eval_set.queries[q].strip())
    if empty:
        raise ValueError(f"{len(empty)} evaluation queries are empty (e.g. {empty[:5]}).")


def _write_output(
    out: Path, encoder: SimCSEEncoder, report: Mapping[str, Any], mined: MiningResult | None
) -> None:
    def write(tmp: Path) -> None:
        encoder.save_pretrained(tmp)
        write_json(report, tmp / REPORT_JSON)
        chart = write_chart(report, tmp / REPORT_PNG)
        write_markdown(report, tmp / REPORT_MD, chart=REPORT_PNG if chart else None)
        if mined is not None:
            mined.write_jsonl(tmp / MINED_JSONL)

    _io.atomic_write_dir(out, write)
