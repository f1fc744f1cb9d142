"""What a question generator is, its errors, and :func:`as_generator` that adapts an LLM to it.

A :class:`QuestionGenerator` has a ``model_name`` (part of the cache key) and
``complete(prompt) -> str``, sync or ``async``. :func:`as_generator` accepts:

* a LangChain ``BaseLanguageModel`` (chat model or completion LLM), wrapped by
  :class:`~simcse_rag.generation.frameworks.LangChainGenerator`;
* a LlamaIndex ``LLM``, wrapped by :class:`~simcse_rag.generation.frameworks.LlamaIndexGenerator`;
* an :class:`~simcse_rag.generation.openai_client.OpenAIChatClient`, or any object with a
  ``complete(prompt)`` method returning text, or a plain callable ``prompt -> str``.

The frameworks are recognised by the modules of the object's classes, so neither is imported
unless the object comes from it (``import simcse_rag`` never imports a framework).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

# The errors live in their own import-free module (the CLI imports them at startup); they are
# part of this module's interface.
from simcse_rag.generation.errors import (
    GeneratorError,
    GeneratorRejected,
    GeneratorUnavailable,
    ReplyFormatError,
)

__all__ = [
    "CallableGenerator",
    "GeneratorError",
    "GeneratorRejected",
    "GeneratorUnavailable",
    "QuestionGenerator",
    "ReplyFormatError",
    "as_generator",
    "framework_of",
]


@runtime_checkable
class QuestionGenerator(Protocol):
    """Something that completes a prompt: what :func:`~simcse_rag.generation.generate_pairs` asks.

    Attributes:
        model_name: Names the model in the cache key (replies of another model are not reused).
    """

    model_name: str

    def complete(self, prompt: str) -> str | Awaitable[str]:
        """The model's reply to ``prompt`` (a coroutine function is awaited)."""
        ...


class CallableGenerator:
    """A :class:`QuestionGenerator` over a function ``prompt -> str`` (sync or async)."""

    def __init__(self, function: Callable[[str], Any], model_name: str) -> None:
        """Wrap ``function``; ``model_name`` goes into the cache key."""
        self.function = function
        self.model_name = model_name

    def __repr__(self) -> str:
        return f"CallableGenerator(model_name={self.model_name!r})"

    async def complete(self, prompt: str) -> str:
        """Call the function (a sync one in a worker thread, so requests still overlap)."""
        if inspect.iscoroutinefunction(self.function):
            reply = await self.function(prompt)
        else:
            reply = await asyncio.to_thread(self.function, prompt)
            if inspect.isawaitable(reply):
                reply = await reply
        if not isinstance(reply, str):
            raise TypeError(
                f"the generator {self.model_name!r} returned {type(reply).__name__}, not str; "
                "complete(prompt) must return the reply text."
            )
        return reply


def framework_of(obj: object) -> str | None:
    """``"langchain"``, ``"llamaindex"`` or ``None``, from the modules of ``obj``'s classes."""
    roots = {cls.__module__.split(".", 1)[0] for cls in type(obj).__mro__}
    if "langchain_core" in roots:
        return "langchain"
    if "llama_index" in roots:
        return "llamaindex"
    return None


def as_generator(obj: object) -> QuestionGenerator:
    """The :class:`QuestionGenerator` for a LangChain model, LlamaIndex LLM, client or function.

    Raises:
        TypeError: ``obj`` is none of these (the message names its type).
    """
    if isinstance(obj, type):
        raise TypeError(
            f"generator must be a LangChain BaseLanguageModel, a LlamaIndex LLM, an "
            f"OpenAIChatClient or a function prompt -> str; got the class "
            f"{obj.__qualname__} itself: pass an instance."
        )
    framework = framework_of(obj)
    if framework == "langchain":
        from simcse_rag.generation.frameworks import LangChainGenerator

        return LangChainGenerator(obj)
    if framework == "llamaindex":
        from simcse_rag.generation.frameworks import LlamaIndexGenerator

        return LlamaIndexGenerator(obj)
    complete = getattr(obj, "complete", None)
    if callable(complete):
        if isinstance(getattr(obj, "model_name", None), str) and inspect.iscoroutinefunction(
            complete
        ):
            return obj  # type: ignore[return-value] - already a QuestionGenerator
        return CallableGenerator(complete, _name(obj))
    if callable(obj):
        return CallableGenerator(obj, _name(obj))
    raise TypeError(
        f"generator must be a LangChain BaseLanguageModel, a LlamaIndex LLM, an "
        f"OpenAIChatClient or a function prompt -> str; got {type(obj).__module__}."
        f"{type(obj).__qualname__}."
    )


def _name(obj: object) -> str:
    name = getattr(obj, "model_name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(obj, "__name__", None) or type(obj).__qualname__
