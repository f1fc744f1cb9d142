"""SimCSEEmbeddings inside LangChain's own vector stores and an LCEL RAG chain."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from langchain_core.runnables import RunnablePassthrough  # noqa: E402
from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402

from langchain_simcse import SimCSEEmbeddings  # noqa: E402
from tests.integrations.corpus import CORPUS  # noqa: E402

TEXTS = [text for _, text, _ in CORPUS]


@pytest.fixture
def embeddings(encoder) -> SimCSEEmbeddings:
    return SimCSEEmbeddings(encoder=encoder)


@pytest.fixture
def documents() -> list[Document]:
    return [
        Document(page_content=t, metadata={"source": f"doc{i}.txt"}, id=f"d{i}")
        for i, t in enumerate(TEXTS)
    ]


def _format(docs: list[Document]) -> str:
    return "\n\n".join(d.page_content for d in docs)


@pytest.mark.parametrize("target", range(len(TEXTS)))
def test_in_memory_vector_store_finds_the_exact_passage(embeddings, documents, target) -> None:
    store = InMemoryVectorStore.from_documents(documents, embeddings)
    hits = store.similarity_search_with_score(TEXTS[target], k=len(TEXTS))
    assert len(hits) == len(TEXTS)
    top, score = hits[0]
    assert top.id == f"d{target}"
    assert top.metadata == {"source": f"doc{target}.txt"}
    assert score == pytest.approx(1.0, abs=1e-5)
    assert all(s <= score + 1e-6 for _, s in hits)


def test_faiss_from_documents_ranks_like_cosine(embeddings, documents) -> None:
    faiss_store = pytest.importorskip("langchain_community.vectorstores").FAISS
    pytest.importorskip("faiss")
    store = faiss_store.from_documents(documents, embeddings)
    query = TEXTS[2]
    hits = store.similarity_search_with_score(query, k=len(TEXTS))
    assert [d.page_content for d, _ in hits][0] == query
    # L2 distance on unit vectors is monotone in cosine: FAISS must rank like the dot product.
    vectors = np.array(embeddings.embed_documents(TEXTS))
    expected = np.argsort(-(vectors @ np.array(embeddings.embed_query(query))), kind="stable")
    assert [d.page_content for d, _ in hits] == [TEXTS[i] for i in expected]
    distances = [s for _, s in hits]
    assert distances == sorted(distances)
    assert distances[0] == pytest.approx(0.0, abs=1e-5)


def test_lcel_rag_chain_puts_retrieved_context_into_the_prompt(embeddings, documents) -> None:
    store = InMemoryVectorStore.from_documents(documents, embeddings)
    retriever = store.as_retriever(search_kwargs={"k": 2})
    prompt = ChatPromptTemplate.from_messages(
        [("human", "Answer from the context.\nContext:\n{context}\n\nQuestion: {question}")]
    )
    # ParrotFakeChatModel answers with the last message it got, i.e. the rendered prompt.
    chain = (
        {"context": retriever | _format, "question": RunnablePassthrough()}
        | prompt
        | ParrotFakeChatModel()
        | StrOutputParser()
    )
    question = TEXTS[2]
    answer = chain.invoke(question)
    retrieved = retriever.invoke(question)
    assert len(retrieved) == 2
    assert retrieved[0].page_content == question
    assert f"Context:\n{_format(retrieved)}\n\nQuestion: {question}" in answer
