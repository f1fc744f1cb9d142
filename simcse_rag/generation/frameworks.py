"""LangChain and LlamaIndex models as question generators.

Each wrapper imports its framework when it is built, never at ``import simcse_rag``;
:func:`~simcse_rag.generation.protocol.as_generator` builds one only for an object that comes
from that framework. Both call the model's async method (``ainvoke`` / ``acomplete``) so that
:func:`~simcse_rag.generation.generate_pairs` can keep several requests in flight. Where the
framework's default stands in for a missing native async path, LangChain runs the sync call in
an executor (requests still overlap) but LlamaIndex's ``CustomLLM`` calls it inline, so such
LLMs answer one request at a time; a thread of our own was not added because an LLM object is
not promised to be thread-safe.
"""

from __future__ import annotations

from typing import Any


class LangChainGenerator:
    """A LangChain ``BaseLanguageModel`` as a question generator.

    A chat model's reply is a message (its text blocks are joined); a completion LLM's is a
    string.
    """

    def __init__(self, model: Any) -> None:
        """Wrap ``model``.

        Raises:
            ImportError: langchain-core is not installed.
            TypeError: ``model`` is not a ``BaseLanguageModel`` (an embedding model, a chain).
        """
        try:
            from langchain_core.language_models import BaseLanguageModel
        except ImportError as exc:  # pragma: no cover - the object came from langchain_core
            raise ImportError(
                'LangChain generators need langchain-core: pip install "simcse-rag[langchain]".'
            ) from exc
        if not isinstance(model, BaseLanguageModel):
            raise TypeError(
                f"a LangChain generator must be a BaseLanguageModel (chat model or LLM); got "
                f"{type(model).__qualname__}."
            )
        self.model = model
        name = getattr(model, "model_name", None) or getattr(model, "model", None)
        self.model_name = f"langchain:{type(model).__qualname__}:{name or ''}"

    def __repr__(self) -> str:
        return f"LangChainGenerator(model_name={self.model_name!r})"

    async def complete(self, prompt: str) -> str:
        """The model's reply text."""
        from langchain_core.messages import BaseMessage

        reply = await self.model.ainvoke(prompt)
        if isinstance(reply, BaseMessage):
            return str(reply.text)
        return reply if isinstance(reply, str) else str(reply)


class LlamaIndexGenerator:
    """A LlamaIndex ``LLM`` as a question generator (its ``acomplete`` reply's text)."""

    def __init__(self, llm: Any) -> None:
        """Wrap ``llm``.

        Raises:
            ImportError: llama-index-core is not installed.
            TypeError: ``llm`` is not a LlamaIndex LLM (an embedding model, a query engine).
        """
        try:
            from llama_index.core.base.llms.base import BaseLLM
        except ImportError as exc:  # pragma: no cover - the object came from llama_index
            raise ImportError(
                'LlamaIndex generators need llama-index-core: pip install "simcse-rag[llamaindex]".'
            ) from exc
        if not isinstance(llm, BaseLLM):
            raise TypeError(f"a LlamaIndex generator must be an LLM; got {type(llm).__qualname__}.")
        self.llm = llm
        try:
            name = llm.metadata.model_name
        except Exception:  # noqa: BLE001 - metadata is user code on custom LLMs; the name is cosmetic
            name = ""
        self.model_name = f"llamaindex:{type(llm).__qualname__}:{name}"

    def __repr__(self) -> str:
        return f"LlamaIndexGenerator(model_name={self.model_name!r})"

    async def complete(self, prompt: str) -> str:
        """The LLM's completion text."""
        reply = await self.llm.acomplete(prompt)
        return reply.text or ""
