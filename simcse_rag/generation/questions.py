"""Generate training pairs: ask an LLM for questions each passage answers.

:func:`generate_pairs` sends one prompt per passage (:mod:`simcse_rag.generation.prompts`),
at most ``concurrency`` at a time, records each reply in a JSONL cache as it arrives
(:mod:`simcse_rag.generation.cache`) and parses it into questions, each paired with the passage
it was written from. An interrupted run (Ctrl-C, a server that stops answering) leaves every
reply received so far in the cache; the next run with the same cache asks only for the rest.

The pairs are candidates: :func:`simcse_rag.adapt.adapt` keeps only those whose passage comes
back for the question (the round-trip filter) before training on them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import inspect
import logging
import math
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from simcse_rag import _validate
from simcse_rag.generation.cache import QuestionCache, cache_key
from simcse_rag.generation.defaults import DEFAULT_CONCURRENCY, DEFAULT_PER_PASSAGE
from simcse_rag.generation.prompts import DROP_REASONS, build_prompt, parse_questions
from simcse_rag.generation.protocol import QuestionGenerator, ReplyFormatError, as_generator
from simcse_rag.pairs import TrainingPair
from simcse_rag.schema import Passage

logger = logging.getLogger(__name__)

#: Prefix of generated questions' query ids (a hash of passage id and question follows).
GENERATED_ID_PREFIX = "gen:"


@dataclass(frozen=True)
class GenerationResult:
    """What :func:`generate_pairs` returns.

    Attributes:
        pairs: One pair per kept question (``positive_id`` the passage it was written from),
            in passage order.
        counts: ``passages``, ``cached`` (answered from the cache), ``requests`` (sent in this
            run), ``bad_replies`` (not a completion; the passage is skipped and asked again
            next run), ``questions`` (kept), and ``dropped_<reason>`` per drop reason
            (:data:`~simcse_rag.generation.prompts.DROP_REASONS`).
        model: The generator's ``model_name``.
    """

    pairs: list[TrainingPair]
    counts: dict[str, int]
    model: str = ""


def sample_passages(passages: Sequence[Passage], count: int, seed: int) -> list[Passage]:
    """``count`` passages drawn at random (seeded), in corpus order; all when there are fewer."""
    passages = list(passages)
    if count >= len(passages):
        return passages
    picked = set(random.Random(seed).sample(range(len(passages)), count))
    return [p for i, p in enumerate(passages) if i in picked]


def passages_needed(max_pairs: int, per_passage: int) -> int:
    """Passages to ask about for up to ``max_pairs`` questions at ``per_passage`` each."""
    return math.ceil(max_pairs / per_passage)


def generate_pairs(
    passages: Sequence[Passage],
    generator: object,
    *,
    per_passage: int = DEFAULT_PER_PASSAGE,
    domain: str | None = None,
    cache_path: str | os.PathLike[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    show_progress: bool = False,
) -> GenerationResult:
    """Ask ``generator`` for ``per_passage`` questions about each passage.

    Args:
        passages: The passages to ask about (ids unique).
        generator: A LangChain model, LlamaIndex LLM, :class:`OpenAIChatClient` or function
            (:func:`~simcse_rag.generation.protocol.as_generator`).
        per_passage: Questions asked per passage.
        domain: Optional domain hint for the prompt (e.g. ``"corporate finance"``).
        cache_path: JSONL file of replies, read first and appended to (``None``: no cache).
        concurrency: Most requests in flight at once.
        show_progress: A tqdm bar over passages.

    Raises:
        GeneratorError: The generator is unreachable, rejects the requests or keeps failing
            (replies received before are in the cache).
        ValueError: A bad ``per_passage`` or ``concurrency``, or duplicate passage ids.
        TypeError: ``generator`` is not a supported object.
    """
    question_generator = as_generator(generator)
    _validate.positive_int(per_passage, "per_passage")
    _validate.positive_int(concurrency, "concurrency")
    passages = list(passages)
    if len({p.id for p in passages}) != len(passages):
        raise ValueError("Passage ids must be unique to generate questions for them.")
    job = _Job(question_generator, per_passage, domain, concurrency, show_progress)
    cache = QuestionCache(cache_path) if cache_path is not None else None
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(job.run(passages, cache))
    # Called from async code (a notebook, an async app): its loop is busy running us, so the
    # requests get a loop of their own in a worker thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, job.run(passages, cache)).result()


@dataclass
class _Job:
    generator: QuestionGenerator
    per_passage: int
    domain: str | None
    concurrency: int
    show_progress: bool

    async def run(self, passages: list[Passage], cache: QuestionCache | None) -> GenerationResult:
        counts: Counter[str] = Counter(passages=len(passages), requests=0, cached=0, bad_replies=0)
        counts.update({f"dropped_{reason}": 0 for reason in DROP_REASONS})
        questions: dict[int, list[str]] = {}
        limit = asyncio.Semaphore(self.concurrency)
        bar = _progress(len(passages), self.show_progress)

        async def one(i: int, passage: Passage) -> None:
            prompt = build_prompt(passage.text, self.per_passage, self.domain)
            key = cache_key(
                self.generator.model_name, passage.id, passage.text, self.per_passage, self.domain
            )
            reply = cache.get(key) if cache is not None else None
            if reply is not None:
                counts["cached"] += 1
            else:
                async with limit:
                    counts["requests"] += 1
                    try:
                        reply = await _ask(self.generator, prompt)
                    except ReplyFormatError as exc:
                        counts["bad_replies"] += 1
                        logger.warning("passage %r skipped: %s", passage.id, exc)
                        if bar is not None:
                            bar.update(1)
                        return
                if cache is not None:
                    cache.add(
                        key,
                        reply,
                        model=self.generator.model_name,
                        passage_id=passage.id,
                        n=self.per_passage,
                    )
            parsed = parse_questions(reply, prompt=prompt, n=self.per_passage)
            counts.update({f"dropped_{r}": c for r, c in parsed.dropped.items()})
            questions[i] = parsed.questions
            if bar is not None:
                bar.update(1)

        try:
            if cache is not None:
                with cache:
                    await _all_or_none([one(i, p) for i, p in enumerate(passages)])
            else:
                await _all_or_none([one(i, p) for i, p in enumerate(passages)])
        except BaseException:  # Ctrl-C (a cancellation here) or a failing server: say what stays
            if cache is not None:
                logger.warning(
                    "generation stopped after %d of %d passages; %d replies are kept in %s and "
                    "the same call resumes from them",
                    len(questions),
                    len(passages),
                    len(cache),
                    cache.path,
                )
            raise
        finally:
            if bar is not None:
                bar.close()
            close = getattr(self.generator, "aclose", None)
            if close is not None and inspect.iscoroutinefunction(close):
                await close()
        pairs = _pairs(passages, questions, counts)
        counts["questions"] = len(pairs)
        logger.info("generated questions: %s", dict(counts))
        return GenerationResult(pairs, dict(counts), self.generator.model_name)


async def _ask(generator: QuestionGenerator, prompt: str) -> str:
    reply = generator.complete(prompt)
    if inspect.isawaitable(reply):
        reply = await reply
    if not isinstance(reply, str):
        raise ReplyFormatError(f"the generator returned {type(reply).__name__}, not text.")
    return reply


async def _all_or_none(coroutines: list) -> None:
    """Run all; on the first error (or cancellation) cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    if not tasks:
        return
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _pairs(
    passages: list[Passage], questions: dict[int, list[str]], counts: Counter[str]
) -> list[TrainingPair]:
    """One pair per question; a question already made for an earlier passage is dropped."""
    seen: set[str] = set()
    pairs: list[TrainingPair] = []
    for i, passage in enumerate(passages):
        for question in questions.get(i, []):
            norm = " ".join(question.casefold().split())
            if norm in seen:
                counts["dropped_duplicate"] += 1
                continue
            seen.add(norm)
            digest = hashlib.sha1(f"{passage.id}\n{norm}".encode()).hexdigest()[:16]
            query_id = f"{GENERATED_ID_PREFIX}{digest}"
            pairs.append(TrainingPair(query_id, question, passage.text, passage.id))
    return pairs


def _progress(total: int, show: bool):  # noqa: ANN202 - tqdm is optional at type level
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generating questions", unit="passage")
