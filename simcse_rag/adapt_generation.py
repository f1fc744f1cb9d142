"""The generator route of adaptation: an LLM writes the questions, then the ``generated`` route.

:func:`simcse_rag.adapt.adapt` with ``generator=`` calls :func:`generate_candidates` first: it
samples enough passages for ``AdaptConfig.max_pairs`` questions (seeded, so a re-run asks about
the same passages and finds their replies in the cache), asks the LLM for
:attr:`GenerationConfig.per_passage` questions about each (:mod:`simcse_rag.generation`) and
returns the candidate pairs. They then take the ``generated=`` route
(:func:`simcse_rag.adapt_questions.round_trip_filter`, hold-out, mining, training), and the
report lists what generation dropped next to what the round-trip filter kept.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simcse_rag import _validate
from simcse_rag.adapt_config import AdaptConfig
from simcse_rag.adapt_questions import QuestionPairs
from simcse_rag.generation.defaults import DEFAULT_CONCURRENCY, DEFAULT_PER_PASSAGE
from simcse_rag.generation.questions import (
    GenerationResult,
    generate_pairs,
    passages_needed,
    sample_passages,
)
from simcse_rag.schema import Passage

logger = logging.getLogger(__name__)

#: Report key of the generation counts (next to ``generated``, the round-trip filter's).
REPORT_ROUTE = "generation"
#: Counts shown in the report even when zero.
_ALWAYS_SHOWN = ("passages", "requests", "cached", "questions")


@dataclass(frozen=True)
class GenerationConfig:
    """How :func:`simcse_rag.adapt.adapt` asks an LLM for questions.

    Attributes:
        per_passage: Questions asked per passage.
        domain: Optional domain hint for the prompt (e.g. ``"corporate finance"``).
        concurrency: Most requests in flight at once.
        cache_path: JSONL cache of replies (an interrupted run resumes from it); ``None``
            keeps none.
    """

    per_passage: int = DEFAULT_PER_PASSAGE
    domain: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    cache_path: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        _validate.positive_int(self.per_passage, "GenerationConfig.per_passage")
        _validate.positive_int(self.concurrency, "GenerationConfig.concurrency")
        if self.domain is not None and not isinstance(self.domain, str):
            raise TypeError(
                f"GenerationConfig.domain must be a str, got {type(self.domain).__name__}."
            )


def generate_candidates(
    corpus: Sequence[Passage],
    generator: object,
    config: AdaptConfig,
    settings: GenerationConfig | None = None,
    *,
    show_progress: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> GenerationResult:
    """Candidate pairs for the ``generated`` route, from an LLM.

    Args:
        corpus: The passages (a seeded sample of them is asked about).
        generator: A LangChain model, LlamaIndex LLM,
            :class:`~simcse_rag.generation.OpenAIChatClient` or function ``prompt -> str``.
        config: The adaptation's settings (``max_pairs`` sizes the sample, ``seed`` draws it).
        settings: Generation settings (default :class:`GenerationConfig`).
        show_progress: A progress bar over passages.
        on_stage: Called with a short message before the requests start.

    Raises:
        GeneratorError: The LLM is unreachable or keeps failing (replies so far are cached).
        ValueError: The LLM wrote no usable question.
    """
    settings = settings or GenerationConfig()
    count = passages_needed(config.max_pairs, settings.per_passage)
    passages = sample_passages(corpus, count, config.seed)
    if on_stage is not None:
        on_stage(
            f"asking the LLM for {settings.per_passage} questions about each of "
            f"{len(passages)} passages"
        )
    result = generate_pairs(
        passages,
        generator,
        per_passage=settings.per_passage,
        domain=settings.domain,
        cache_path=settings.cache_path,
        concurrency=settings.concurrency,
        show_progress=show_progress,
    )
    if not result.pairs:
        raise ValueError(
            f"The LLM wrote no usable question ({report_counts(result.counts)}); check the "
            "model with a few passages, or give labelled pairs with --pairs/--train-data."
        )
    return result


def with_generation(questions: QuestionPairs, made: GenerationResult) -> QuestionPairs:
    """``questions`` with the LLM named in its source and the generation's counts first."""
    filters = {REPORT_ROUTE: report_counts(made.counts), **questions.filters}
    source = f"{questions.source}; written by {made.model or 'an LLM'}"
    return dataclasses.replace(questions, source=source, filters=filters)


def report_counts(counts: dict[str, int]) -> dict[str, int]:
    """The counts worth showing: the totals, and the drop reasons that occurred."""
    return {k: v for k, v in counts.items() if v or k in _ALWAYS_SHOWN}
