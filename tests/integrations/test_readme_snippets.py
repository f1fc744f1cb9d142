"""The README's LangChain and LlamaIndex snippets run as printed (real bundled model: slow)."""

from __future__ import annotations

import contextlib
import io
import textwrap

import pytest

from tests.conftest import has_default_model

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not has_default_model(), reason="needs the 'model' extra"),
]

LANGCHAIN = """
from langchain_core.documents import Document
from langchain_simcse import SimCSEEmbeddings, SimCSERetriever

docs = [Document(page_content="儿童发烧超过三天应该去医院检查。", id="zh-1"),
        Document(page_content="A child with a fever above 38.5 °C should see a doctor.", id="en-1"),
        Document(page_content="Dividends are taxed at the shareholder's marginal rate.", id="en-2")]
retriever = SimCSERetriever.from_documents(docs, embeddings=SimCSEEmbeddings(), k=2)
for doc in retriever.invoke("my kid has a high temperature"):
    print(doc.id, round(doc.metadata["score"], 4), doc.metadata["sources"])
retriever.save("faq-index")                       # JSON + .npy + FAISS files, no pickle
print([d.id for d in SimCSERetriever.load("faq-index").invoke("发烧", k=1)])
"""

LLAMA_INDEX = """
from llama_index.core import Settings
from llama_index.core.schema import TextNode
from llama_index_simcse import HybridRRFRetriever, SimCSEEmbedding

Settings.embed_model = embed_model = SimCSEEmbedding()  # bundled all-MiniLM-L6-v2, offline
nodes = [TextNode(id_="zh-1", text="儿童发烧超过三天应该去医院检查。"),
         TextNode(id_="en-1", text="A child with a fever above 38.5 °C should see a doctor."),
         TextNode(id_="en-2", text="Dividends are taxed at the shareholder's marginal rate.")]
retriever = HybridRRFRetriever.from_nodes(nodes, embed_model=embed_model, similarity_top_k=2)
for hit in retriever.retrieve("my kid has a high temperature"):
    print(hit.node.node_id, round(hit.score, 4))
retriever.persist("faq-index")                      # JSON + .npy + FAISS files, no pickle
loaded = HybridRRFRetriever.from_persist_dir("faq-index", embed_model=embed_model)
print([n.node.node_id for n in loaded.retrieve("发烧")])
"""

LLAMA_INDEX_FUSION = """
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode
from llama_index.retrievers.bm25 import BM25Retriever
from llama_index_simcse import HybridRRFRetriever, SimCSEEmbedding

nodes = [TextNode(id_="zh-1", text="儿童发烧超过三天应该去医院检查。"),
         TextNode(id_="en-1", text="A child with a fever above 38.5 °C should see a doctor."),
         TextNode(id_="en-2", text="Dividends are taxed at the shareholder's marginal rate.")]
vector = VectorStoreIndex(nodes, embed_model=SimCSEEmbedding()).as_retriever(similarity_top_k=10)
bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=10)
fused = HybridRRFRetriever(retrievers=[vector, bm25], weights=[0.7, 0.3], similarity_top_k=2)
engine = RetrieverQueryEngine.from_args(fused, llm=MockLLM())    # use your LLM here
print([n.node.node_id for n in engine.query("child fever doctor").source_nodes])
"""


def _run(code: str) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(textwrap.dedent(code), "<snippet>", "exec"), {})  # noqa: S102
    return out.getvalue().splitlines()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_langchain_snippet() -> None:
    lines = _run(LANGCHAIN)
    assert lines[0].startswith("en-1 ")
    assert len(lines) == 3
    assert lines[-1] == "['zh-1']"


def test_llama_index_snippet() -> None:
    from llama_index.core import Settings

    previous = Settings._embed_model
    try:
        lines = _run(LLAMA_INDEX)
    finally:
        Settings._embed_model = previous
    assert lines[0].startswith("en-1 ")
    assert lines[-1].startswith("['zh-1'")


def test_llama_index_fusion_snippet() -> None:
    pytest.importorskip("llama_index.retrievers.bm25")
    assert _run(LLAMA_INDEX_FUSION) == ["['en-1', 'zh-1']"]
