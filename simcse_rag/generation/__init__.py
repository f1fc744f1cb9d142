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

import importlib
from typing import Any

# Names -> defining module, imported on first use (PEP 562): the CLI imports the errors at
# startup, and that must not load the prompt and parsing modules (numpy, jieba rules).
_EXPORTS = {
    "QuestionCache": "cache",
    "cache_key": "cache",
    "GeneratorError": "errors",
    "GeneratorRejected": "errors",
    "GeneratorUnavailable": "errors",
    "ReplyFormatError": "errors",
    "API_KEY_ENV": "openai_client",
    "OpenAIChatClient": "openai_client",
    "RetryPolicy": "openai_client",
    "DROP_REASONS": "prompts",
    "PROMPT_VERSION": "prompts",
    "build_prompt": "prompts",
    "parse_questions": "prompts",
    "passage_language": "prompts",
    "QuestionGenerator": "protocol",
    "as_generator": "protocol",
    "GENERATED_ID_PREFIX": "questions",
    "GenerationResult": "questions",
    "generate_pairs": "questions",
    "passages_needed": "questions",
    "sample_passages": "questions",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
