"""The ``--generator-*`` options of ``simcse-rag adapt``: questions written by an LLM.

:func:`add_generator_arguments` adds them; :func:`generator_from_args` builds the
OpenAI-compatible client and sends it one short request, so a server that refuses connections,
a model it does not know or a key it wants fail in one line before the corpus is read or a
model loaded. The key only ever comes from the ``OPENAI_API_KEY`` environment variable: there is
deliberately no option for it, because argv is visible to every user of the machine (``ps``)
and lands in shell histories.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from simcse_rag.adapt_config import ROUND_TRIP_MODELS, AdaptConfig
from simcse_rag.cli._common import positive_float, positive_int
from simcse_rag.generation.defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PER_PASSAGE,
    DEFAULT_TIMEOUT_S,
)

#: File name of the reply cache when ``--generation-cache`` is not given.
CACHE_NAME = "generated_questions.jsonl"


def add_generator_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--generator-*`` options (and ``--domain``, ``--questions-per-passage``)."""
    group = parser.add_argument_group(
        "questions written by an LLM",
        "An OpenAI-compatible server (Ollama, vLLM, llama.cpp, OpenAI) writes N questions "
        "about each passage of a seeded sample of the corpus (--max-pairs / N passages); each "
        "question is kept only if its passage comes back for it. The API key is read from the "
        "OPENAI_API_KEY environment variable (for Ollama any value).",
    )
    group.add_argument(
        "--generator-url",
        type=http_url,
        metavar="URL",
        help="API root of the server, e.g. http://localhost:11434/v1 (Ollama)",
    )
    group.add_argument(
        "--generator-model", metavar="NAME", help="model name on that server, e.g. qwen2.5:7b"
    )
    group.add_argument(
        "--questions-per-passage",
        type=positive_int,
        default=DEFAULT_PER_PASSAGE,
        metavar="N",
        help=f"default: {DEFAULT_PER_PASSAGE}",
    )
    group.add_argument(
        "--domain",
        metavar="TEXT",
        help='a hint for the prompt, e.g. "corporate finance"; questions are written in each '
        "passage's language",
    )
    group.add_argument(
        "--generator-concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"requests in flight at once (default: {DEFAULT_CONCURRENCY})",
    )
    group.add_argument(
        "--generator-timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds one request may take, time queued on the server included (default: "
        f"{DEFAULT_TIMEOUT_S:g}); 429, 5xx and timeouts are retried",
    )
    group.add_argument(
        "--round-trip-model",
        choices=ROUND_TRIP_MODELS,
        default=AdaptConfig.round_trip_model,
        help="the retriever that must find each question's passage: 'adapted' (default) first "
        "trains a model on all the generated pairs and searches with it, which keeps the hard "
        "questions the base model misses but costs a second training; 'base' searches with the "
        "base model",
    )
    group.add_argument(
        "--generation-cache",
        type=Path,
        metavar="PATH",
        help=f"JSONL file of the LLM's replies, so an interrupted run resumes without asking "
        f"again (default: {CACHE_NAME} in --cache-dir, else OUT.{CACHE_NAME} beside --out)",
    )


def http_url(value: str) -> str:
    """argparse type: an http(s) URL with a host."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http(s) URL; give the API root, e.g. http://localhost:11434/v1"
        )
    return value


def generation_cache_path(args: argparse.Namespace) -> Path:
    """``--generation-cache``, else a file in ``--cache-dir``, else one beside ``--out``.

    Never inside ``--out``: that folder is replaced as a whole at the end of the run.
    """
    if args.generation_cache is not None:
        return args.generation_cache
    if getattr(args, "cache_dir", None) is not None:
        return args.cache_dir / CACHE_NAME
    out = Path(args.out)
    return out.parent / f"{out.name}.{CACHE_NAME}"


def generator_from_args(args: argparse.Namespace) -> Any:
    """The checked client for ``--generator-url``/``--generator-model``, or ``None``.

    Raises:
        ValueError: One of the two options without the other, or with labelled pairs.
        GeneratorError: The server refuses connections, rejects the model or the key, or
            does not answer (one request is sent).
    """
    url, model = args.generator_url, args.generator_model
    if url is None and model is None:
        return None
    if url is None or model is None:
        given, missing = "--generator-url", "--generator-model"
        if url is None:
            given, missing = missing, given
        raise ValueError(
            f"{given} needs {missing} too, e.g. --generator-url http://localhost:11434/v1 "
            "--generator-model qwen2.5:7b."
        )
    if getattr(args, "pairs", None) is not None or getattr(args, "train_data", None) is not None:
        raise ValueError(
            "--generator-url writes questions for a corpus without labels; with labelled pairs "
            "(--pairs/--train-data) drop --generator-url."
        )
    import asyncio

    from simcse_rag.generation.openai_client import OpenAIChatClient

    client = OpenAIChatClient(
        url,
        model,
        timeout=args.generator_timeout,
        max_connections=args.generator_concurrency,
    )

    async def check() -> None:
        try:
            await client.check()
        finally:
            await client.aclose()

    asyncio.run(check())
    return client


def generation_config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~simcse_rag.adapt_generation.GenerationConfig` of the options."""
    from simcse_rag.adapt_generation import GenerationConfig

    return GenerationConfig(
        per_passage=args.questions_per_passage,
        domain=args.domain,
        concurrency=args.generator_concurrency,
        cache_path=generation_cache_path(args),
    )
