"""HybridRetriever and ``simcse-rag index build`` on the Milvus backend (real Milvus Lite)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from simcse_rag.index.dense import DenseIndex  # noqa: E402
from simcse_rag.index.hybrid import HybridRetriever  # noqa: E402
from simcse_rag.index.milvus import MilvusDenseIndex  # noqa: E402
from simcse_rag.schema import Passage  # noqa: E402

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

TEXTS = [
    "fever in children and what to do",
    "a child with a cough at night",
    "tax on dividends for a company",
    "bank loan interest rate",
    "儿童发烧怎么办",
    "baby sleep hours",
    "insulin dose for diabetes",
    "skin rash and allergy",
]
PASSAGES = [Passage(f"p{i}", t, {"i": i}) for i, t in enumerate(TEXTS)]


def hits(retriever, query, mode="hybrid"):
    return [(h.id, h.rank, round(h.score, 5)) for h in retriever.search(query, k=5, mode=mode)]


def test_milvus_backend_gives_the_same_hits_as_faiss(tmp_path, tiny_encoder):
    milvus = MilvusDenseIndex(tiny_encoder.dim, str(tmp_path / "v.db"), index_type="FLAT")
    on_milvus = HybridRetriever.from_passages(PASSAGES, tiny_encoder, dense_index=milvus)
    on_faiss = HybridRetriever.from_passages(PASSAGES, tiny_encoder)
    assert isinstance(on_faiss.dense_index, DenseIndex)
    for query in ("child fever", "loan tax", "发烧"):
        for mode in ("hybrid", "dense"):
            assert hits(on_milvus, query, mode) == hits(on_faiss, query, mode)
    on_milvus.delete(["p0"])
    on_milvus.add([Passage("p9", "vaccine schedule for a baby", {})])
    assert len(milvus) == len(on_milvus) == 8


def test_milvus_backed_retriever_saves_and_loads(tmp_path, tiny_encoder):
    milvus = MilvusDenseIndex(tiny_encoder.dim, str(tmp_path / "v.db"), index_type="FLAT")
    retriever = HybridRetriever.from_passages(PASSAGES, tiny_encoder, dense_index=milvus)
    before = hits(retriever, "child fever")
    folder = retriever.save(tmp_path / "index")
    assert json.loads((folder / "dense" / "milvus.json").read_text())["count"] == len(PASSAGES)
    loaded = HybridRetriever.load(folder, tiny_encoder)
    assert isinstance(loaded.dense_index, MilvusDenseIndex)
    assert hits(loaded, "child fever") == before


def test_dimension_mismatch_between_model_and_backend(tmp_path, tiny_encoder):
    milvus = MilvusDenseIndex(tiny_encoder.dim + 1, str(tmp_path / "v.db"))
    with pytest.raises(ValueError, match="dim"):
        HybridRetriever(tiny_encoder, dense_index=milvus)


def test_cli_index_build_with_milvus_backend(tmp_path, tiny_model_dir, capsys):
    from simcse_rag.cli import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"_id": p.id, "text": p.text}) for p in PASSAGES))
    out, uri = tmp_path / "index", str(tmp_path / "vectors.db")
    args = ["index", "build", "--corpus", str(corpus), "--out", str(out), "--model"]
    args += [str(tiny_model_dir), "--backend", "milvus", "--milvus-uri", uri, "--no-progress"]
    assert main(args) == 0
    first = json.loads((out / "dense" / "milvus.json").read_text())
    assert first["count"] == len(PASSAGES) and first["uri"].endswith("vectors.db")
    # Rebuilding goes to a fresh collection and drops the old one only after the new index is saved.
    assert main(args) == 0
    second = json.loads((out / "dense" / "milvus.json").read_text())
    assert second["collection"] != first["collection"]
    capsys.readouterr()
    assert main(["search", str(out), "child fever", "-k", "3", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert len(found) == 3
    # A bad URI is a one-line error and leaves the index as it was.
    bad = args[:-3] + ["--milvus-uri", str(tmp_path / "nope" / "x.db"), "--no-progress"]
    assert main(bad) == 2
    assert "does not exist" in capsys.readouterr().err
    assert json.loads((out / "dense" / "milvus.json").read_text()) == second
