"""Training questions written by an LLM, for adapting without labelled pairs.

* :mod:`~simcse_rag.generation.prompts`: the prompt (in the passage's language, with an
  optional domain hint) and the parsing of replies, with drops counted by reason;
* :mod:`~simcse_rag.generation.protocol`: :class:`QuestionGenerator`, its errors and
  :func:`as_generator` (LangChain, LlamaIndex, a client or a function);
* :mod:`~simcse_rag.generation.openai_client`: :class:`OpenAIChatClient` for OpenAI-compatible
  servers (Ollama, vLLM, llama.cpp), key from ``OPENAI_API_KEY`` only;
* :mod:`~simcse_rag.generation.frameworks`: the LangChain and LlamaIndex wrappers;
* :mod:`~simcse_rag.generation.cache`: the JSONL cache that lets an interrupted run resume;
* :mod:`~simcse_rag.generation.questions`: :func:`generate_pairs`, concurrent and cached.

Importing this package imports neither a framework nor httpx.
"""

from __future__ import annotations

from simcse_rag.generation.cache import QuestionCache, cache_key
from simcse_rag.generation.openai_client import API_KEY_ENV, OpenAIChatClient, RetryPolicy
from simcse_rag.generation.prompts import (
    DROP_REASONS,
    PROMPT_VERSION,
    build_prompt,
    parse_questions,
    passage_language,
)
from simcse_rag.generation.protocol import (
    GeneratorError,
    GeneratorRejected,
    GeneratorUnavailable,
    QuestionGenerator,
    ReplyFormatError,
    as_generator,
)
from simcse_rag.generation.questions import (
    GENERATED_ID_PREFIX,
    GenerationResult,
    generate_pairs,
    passages_needed,
    sample_passages,
)

__all__ = [
    "API_KEY_ENV",
    "DROP_REASONS",
    "GENERATED_ID_PREFIX",
    "PROMPT_VERSION",
    "GenerationResult",
    "GeneratorError",
    "GeneratorRejected",
    "GeneratorUnavailable",
    "OpenAIChatClient",
    "QuestionCache",
    "QuestionGenerator",
    "ReplyFormatError",
    "RetryPolicy",
    "as_generator",
    "build_prompt",
    "cache_key",
    "generate_pairs",
    "parse_questions",
    "passage_language",
    "passages_needed",
    "sample_passages",
]
