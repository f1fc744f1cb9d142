"""The demo's value types: its settings, its result and the events it sends as it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcse_rag import _validate
from simcse_rag.schema import Hit


@dataclass(frozen=True)
class DemoConfig:
    """Settings of :func:`~simcse_rag.demo.run_demo`.

    Attributes:
        corpus: A corpus file (BEIR ``corpus.jsonl`` or ``.txt``, one passage per line);
            ``None`` uses the bundled sample with its judged queries.
        queries: Queries to show; empty: four bundled queries, or pseudo-queries sampled from
            a user's corpus.
        k: Hits shown per query and mode.
        adapt: Run the domain adaptation.
        max_steps: Fine-tuning steps.
        batch_size: Training pairs per step.
        learning_rate: Peak learning rate.
        train_max_length: Token limit of training texts (shorter is faster on CPU).
        sampled_queries: How many pseudo-queries to show for a user's corpus.
        seed: Seed for sampling and training.
    """

    corpus: Path | None = None
    queries: tuple[str, ...] = ()
    k: int = 3
    adapt: bool = True
    max_steps: int = 40
    batch_size: int = 16
    learning_rate: float = 3e-5
    train_max_length: int = 96
    sampled_queries: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.corpus is not None:
            object.__setattr__(self, "corpus", Path(self.corpus))
        queries = _validate.non_empty_texts(
            self.queries, "DemoConfig.queries", single="wrap one in a tuple"
        )
        object.__setattr__(self, "queries", queries)
        for name in ("k", "max_steps", "sampled_queries", "train_max_length"):
            value = _validate.positive_int(getattr(self, name), f"DemoConfig.{name}")
            object.__setattr__(self, name, value)  # plain int: a numpy integer is not JSON
        batch_size = _validate.int_at_least(self.batch_size, "DemoConfig.batch_size", 2)
        object.__setattr__(self, "batch_size", batch_size)
        if not self.learning_rate > 0:
            raise ValueError(f"DemoConfig.learning_rate must be > 0, got {self.learning_rate!r}.")


@dataclass(frozen=True)
class QueryHits:
    """One query's hits in each mode.

    Attributes:
        query: The query text.
        relevant: Ids judged relevant (for a sampled pseudo-query: its source passage); empty
            when unknown.
        hits: Mode (``dense``, ``bm25``, ``hybrid``) -> hits, best first.
        query_id: The bundled query id, when there is one.
        kind: ``judged`` (a bundled query with judgments), ``pseudo`` (sampled from the
            corpus; ``relevant`` is its source passage) or ``user`` (no judgments).
    """

    query: str
    relevant: frozenset[str]
    hits: dict[str, list[Hit]]
    query_id: str = ""
    kind: str = "user"


@dataclass(frozen=True)
class DemoResult:
    """What :func:`~simcse_rag.demo.run_demo` returns.

    Attributes:
        corpus_name: Where the passages come from.
        passages: Number of passages indexed.
        languages: Passage count per ``lang`` metadata value (empty when the corpus has none).
        model: Name or path of the base model.
        queries: Hits of the shown queries.
        evaluation_source: What the metrics are computed on ("" when there are none).
        evaluation_queries: Number of evaluation queries.
        before: Mode -> metrics of the base model (``ndcg@10``, ``recall@10``, ``mrr@10``);
            empty when nothing could be evaluated.
        after: Mode -> metrics of the adapted model; empty without adaptation.
        adaptation: The adaptation report (as in ``report.json``), or ``None``.
        adapted_model: Folder of the adapted model, or ``None``.
        notes: Remarks for the reader (what was skipped and why).
        timings: Seconds per stage.
    """

    corpus_name: str
    passages: int
    languages: dict[str, int]
    model: str
    queries: list[QueryHits]
    evaluation_source: str = ""
    evaluation_queries: int = 0
    before: dict[str, dict[str, float]] = field(default_factory=dict)
    after: dict[str, dict[str, float]] = field(default_factory=dict)
    adaptation: dict[str, Any] | None = None
    adapted_model: Path | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


#: The stages of :func:`~simcse_rag.demo.run_demo` in order; each sends a :class:`DemoEvent` as
#: it starts and ends.
STAGES: tuple[str, ...] = ("load", "index", "search", "evaluate", "adapt")


@dataclass(frozen=True)
class DemoEvent:
    """Progress of :func:`~simcse_rag.demo.run_demo`, passed to ``on_event`` as it happens.

    Each stage that runs sends a start event and an end event; the ``adapt`` stage sends a start
    event for each of its steps (making pairs, mining, fine-tuning, ...). An end event carries
    the result so far, so a caller can show each part as soon as it exists: ``load`` fills the
    corpus fields, ``search`` the hits, ``evaluate`` the base model's ``before`` metrics and
    ``adapt`` the ``after`` metrics and the adapted model.

    Attributes:
        stage: One of :data:`STAGES`.
        message: What the stage (or step) starts doing, or what it did, e.g.
            ``indexed 156 passages (dense + BM25)``.
        done: ``False`` for a start event, ``True`` for the end event.
        seconds: How long the stage took (end events).
        result: The result so far (end events only).
    """

    stage: str
    message: str
    done: bool = False
    seconds: float = 0.0
    result: DemoResult | None = None
