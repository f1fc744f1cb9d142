"""LangChain and LlamaIndex models as question generators, and as_generator's dispatch."""

from __future__ import annotations

import pytest

from simcse_rag.generation.protocol import CallableGenerator, as_generator, framework_of
from simcse_rag.generation.questions import generate_pairs
from simcse_rag.schema import Passage

PASSAGES = [
    Passage("d1", "The plant in the north produced 120 tonnes of steel in 2020."),
    Passage("d2", "Workers at the southern plant went on strike for two weeks in May."),
]
REPLIES = [
    "How much steel did the northern plant make in 2020?\nWhich plant made 120 tonnes?",
    "1. When did the southern workers strike?\n2. How long was the strike at the plant?",
]


def questions(result) -> list[str]:  # noqa: ANN001
    return [p.query for p in result.pairs]


def test_langchain_chat_model() -> None:
    fake = pytest.importorskip("langchain_core.language_models.fake_chat_models")
    model = fake.FakeListChatModel(responses=REPLIES)
    generator = as_generator(model)
    assert type(generator).__name__ == "LangChainGenerator"
    result = generate_pairs(PASSAGES, model, per_passage=2, concurrency=1)
    assert questions(result) == [
        "How much steel did the northern plant make in 2020?",
        "Which plant made 120 tonnes?",
        "When did the southern workers strike?",
        "How long was the strike at the plant?",
    ]
    assert [p.positive_id for p in result.pairs] == ["d1", "d1", "d2", "d2"]


def test_langchain_generic_chat_model_with_content_blocks() -> None:
    fake = pytest.importorskip("langchain_core.language_models.fake_chat_models")
    from langchain_core.messages import AIMessage

    blocks = [{"type": "text", "text": "How much steel did the plant make?\n"}]
    blocks.append({"type": "text", "text": "Where is the plant that made steel?"})
    model = fake.GenericFakeChatModel(messages=iter([AIMessage(content=blocks)]))
    result = generate_pairs(PASSAGES[:1], model, per_passage=2)
    assert questions(result) == [
        "How much steel did the plant make?",
        "Where is the plant that made steel?",
    ]


def test_langchain_completion_llm() -> None:
    fake = pytest.importorskip("langchain_core.language_models.fake")
    model = fake.FakeListLLM(responses=REPLIES)
    result = generate_pairs(PASSAGES, model, per_passage=2, concurrency=1)
    assert len(result.pairs) == 4 and result.counts["requests"] == 2


def test_langchain_object_that_is_not_a_model() -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.embeddings import DeterministicFakeEmbedding

    with pytest.raises(TypeError, match="BaseLanguageModel.*DeterministicFakeEmbedding"):
        as_generator(DeterministicFakeEmbedding(size=4))


def test_llama_index_mock_llm_echo_is_dropped_as_copies() -> None:
    mock = pytest.importorskip("llama_index.core.llms.mock")
    llm = mock.MockLLM()  # replies with the prompt itself
    assert type(as_generator(llm)).__name__ == "LlamaIndexGenerator"
    result = generate_pairs(PASSAGES, llm, per_passage=2)
    assert result.pairs == []
    assert result.counts["dropped_copy"] > 0 and result.counts["requests"] == 2


def test_llama_index_llm_questions() -> None:
    mock = pytest.importorskip("llama_index.core.llms.mock")
    from llama_index.core.base.llms.types import CompletionResponse

    class QuestionLLM(mock.MockLLM):
        def complete(self, prompt: str, formatted: bool = False, **kwargs: object):  # noqa: ANN201
            return CompletionResponse(text=REPLIES[0] if "north" in prompt else REPLIES[1])

    result = generate_pairs(PASSAGES, QuestionLLM(), per_passage=2)
    assert questions(result)[0] == "How much steel did the northern plant make in 2020?"
    assert len(result.pairs) == 4


class Completer:
    model_name = "my-model"

    def complete(self, prompt: str) -> str:
        return REPLIES[0]


def test_objects_with_complete_and_functions() -> None:
    wrapped = as_generator(Completer())
    assert isinstance(wrapped, CallableGenerator) and wrapped.model_name == "my-model"
    assert as_generator(len).model_name == "len"
    assert framework_of(Completer()) is None


@pytest.mark.parametrize("value", [42, "http://localhost:11434/v1", None, Completer])
def test_unsupported_objects_name_their_type(value: object) -> None:
    with pytest.raises(TypeError, match="LangChain BaseLanguageModel, a LlamaIndex LLM") as info:
        as_generator(value)
    name = value.__qualname__ if isinstance(value, type) else type(value).__qualname__
    assert name in str(info.value)


def test_non_text_reply_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="returned int, not str"):
        generate_pairs(PASSAGES, lambda prompt: 3)
