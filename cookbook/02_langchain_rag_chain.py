"""02 - LangChain RAG chain: SimCSERetriever (hybrid BM25 + dense) -> prompt -> chat model.

By default the answers come from a fake chat model standing in for your LLM: it does not read
the question or reason, it only quotes the first sentence of the top passage, so the recipe runs
offline without keys. The retrieval and the cited sources are real. Pass ``--chat-model
openai:gpt-4o-mini`` (or any ``provider:model`` LangChain's ``init_chat_model`` knows) to plug
in a real LLM; nothing else in the chain changes.

Shows: turning passages into LangChain ``Document`` objects, ``SimCSERetriever`` as a drop-in
retriever in an LCEL chain that returns the answer *and* the cited sources (ids, fused score,
per-source ranks).

Time: about 20 s on 2 CPU cores with the bundled all-MiniLM-L6-v2; about 5 s with ``--tiny``.

Run::

    python cookbook/02_langchain_rag_chain.py                   # bundled model + fake chat model
    python cookbook/02_langchain_rag_chain.py --tiny            # CI
    pip install langchain langchain-openai && export OPENAI_API_KEY=...
    python cookbook/02_langchain_rag_chain.py --chat-model openai:gpt-4o-mini
"""

from __future__ import annotations

import argparse
import re

from _shared import load_encoder
from langchain_core.documents import Document
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from langchain_simcse import SimCSERetriever
from simcse_rag.demo import load_sample

QUESTIONS = [
    "How much paracetamol can I give my toddler for a fever?",
    "手足口病会传染吗",
]

PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You answer parents' questions using only the context below. Cite the passage ids "
            "you used in [brackets]. If the context does not answer, say so. This is general "
            "information, not medical advice.\n\nContext:\n{context}",
        ),
        ("human", "{question}"),
    ]
)


def format_docs(docs: list[Document]) -> str:
    """Context block: one ``[id] text`` paragraph per retrieved document."""
    return "\n\n".join(f"[{d.id}] {d.page_content}" for d in docs)


def fake_chat_model() -> Runnable:
    """A fake chat model standing in for your LLM: quotes the first sentence of the top passage.

    Replace it with any LangChain chat model (``ChatOpenAI``, ``ChatOllama``, ...): the chain
    passes it a prompt value and expects an ``AIMessage`` back, nothing else changes.
    """

    def answer(prompt: PromptValue) -> AIMessage:
        system = prompt.to_messages()[0].content
        match = re.search(r"^\[([^\]]+)\] (.+?)\n(.+?)(?<=[.。!?！？])", system, re.M | re.S)
        if not match:
            return AIMessage(content="The context does not answer this question.")
        doc_id, title, sentence = match.groups()
        return AIMessage(content=f"{title}: {' '.join(sentence.split())} [{doc_id}]")

    return RunnableLambda(answer)


def chat_model(name: str | None) -> Runnable:
    """``provider:model`` via LangChain's ``init_chat_model``, or the offline fake."""
    if not name:
        return fake_chat_model()
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:
        raise SystemExit(
            f"--chat-model {name!r} needs the 'langchain' package and the provider's package, "
            "e.g. pip install langchain langchain-openai"
        ) from exc
    return init_chat_model(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random model (seconds)")
    parser.add_argument("--model", default=None, help="embedding model (default: bundled)")
    parser.add_argument(
        "--chat-model",
        default=None,
        help="provider:model of your LLM (default: a fake chat model that quotes the top passage)",
    )
    parser.add_argument("-k", type=int, default=3, help="passages given to the chat model")
    args = parser.parse_args()

    docs = [
        Document(page_content=p.text, id=p.id, metadata=p.metadata) for p in load_sample().corpus
    ]
    encoder = load_encoder(args.tiny, args.model)
    retriever = SimCSERetriever.from_documents(docs, encoder=encoder, k=args.k, show_progress=True)

    # LCEL: retrieve once, keep the documents for citations, answer from the formatted context.
    answer = (
        {"context": lambda x: format_docs(x["docs"]), "question": lambda x: x["question"]}
        | PROMPT
        | chat_model(args.chat_model)
        | StrOutputParser()
    )
    chain = {
        "docs": retriever,
        "question": RunnablePassthrough(),
    } | RunnablePassthrough.assign(answer=answer)

    label = "A"
    if not args.chat_model:
        label = "A (fake chat model)"
        print(
            "Answers come from a fake chat model standing in for your LLM: it quotes the top "
            "passage and does not reason. Pass --chat-model provider:model to use a real one.\n"
        )
    for question in QUESTIONS:
        result = chain.invoke(question)
        print(f"Q: {question}\n{label}: {result['answer']}")
        for d in result["docs"]:
            ranks = ", ".join(f"{s} #{v['rank']}" for s, v in d.metadata["sources"].items())
            print(f"   source {d.id:<18} score {d.metadata['score']:.4f}  ({ranks})")
        print()


if __name__ == "__main__":
    main()
