"""MilvusBM25Index against a real Milvus Lite: hand-computed BM25 scores, upsert/delete, shapes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from simcse_rag.index.milvus_bm25 import MilvusBM25Index  # noqa: E402

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

DOCS = {
    "a": "cat sat on mat",
    "b": "dog sat on log",
    "c": "cat cat cat",
    "d": "fish swim",
}


def lucene_bm25(
    query: str, docs: dict[str, str], k1: float = 1.5, b: float = 0.75
) -> dict[str, float]:
    """BM25 with Lucene's idf, by hand (whitespace tokens; these texts need no other analysis)."""
    toks = {i: t.split() for i, t in docs.items()}
    n = len(toks)
    avgdl = sum(len(t) for t in toks.values()) / n
    out = {}
    for doc_id, words in toks.items():
        score = 0.0
        for term in set(query.split()):
            df = sum(term in w for w in toks.values())
            tf = words.count(term)
            if not df or not tf:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(words) / avgdl))
        out[doc_id] = score
    return out


@pytest.fixture
def index(tmp_path):
    idx = MilvusBM25Index(str(tmp_path / "bm25.db"))
    idx.add(list(DOCS), list(DOCS.values()))
    yield idx
    idx.close()


def test_scores_match_hand_computed_bm25(index):
    for query in ("cat", "sat mat", "fish dog"):
        want = lucene_bm25(query, DOCS)
        ids, scores = index.search([query], 4)
        matched = [(i, s) for i, s in zip(ids[0], scores[0], strict=True) if s > 0]
        assert {i for i, _ in matched} == {i for i, s in want.items() if s > 0}
        for doc_id, score in matched:
            assert score == pytest.approx(want[doc_id], rel=1e-4)
        assert list(scores[0]) == sorted(scores[0], reverse=True)


def test_rows_are_filled_with_zero_score_documents(index):
    ids, scores = index.search(["fish", "nothing matches", ""], 3)
    assert ids.shape == scores.shape == (3, 3)
    assert ids[0, 0] == "d" and scores[0, 1] == 0 and scores[0, 2] == 0
    assert len(set(ids[0])) == 3 and set(ids[0]) <= set(DOCS)
    assert (scores[1:] == 0).all() and all(len(set(r)) == 3 for r in ids[1:])
    ids, _ = index.search(["cat"], 100)
    assert ids.shape == (1, 4)


def test_upsert_delete_and_tricky_ids(index):
    index.add(["c"], ["dog dog"])  # c no longer about cats
    ids, scores = index.search(["cat"], 4)
    assert "c" not in [i for i, s in zip(ids[0], scores[0], strict=True) if s > 0]
    index.add(['it\'s "x"'], ["zebra"])
    assert len(index) == 5 and 'it\'s "x"' in index
    assert index.search(["zebra"], 1)[0][0, 0] == 'it\'s "x"'
    assert index.delete(['it\'s "x"', "a", "missing"]) == 2
    assert len(index) == 3


def test_chinese_analyzer(tmp_path):
    idx = MilvusBM25Index(str(tmp_path / "zh.db"), collection="zh", analyzer="zh")
    idx.add(["fever", "headache"], ["儿童发烧怎么办", "成人头痛吃什么药"])
    ids, scores = idx.search(["孩子发烧"], 2)
    assert ids[0, 0] == "fever" and scores[0, 0] > 0 and scores[0, 1] == 0


def test_errors_and_save_load(index, tmp_path):
    with pytest.raises(TypeError, match="wrap a single query"):
        index.search("cat", 1)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(["cat"], 0)
    with pytest.raises(ValueError, match="2 ids but 1 texts"):
        index.add(["x", "y"], ["one"])
    with pytest.raises(ValueError, match="Duplicate id 'x'"):
        index.add(["x", "y", "x"], ["one", "two", "three"])
    with pytest.raises(ValueError, match="VARCHAR limit"):
        index.add(["big"], ["x" * 70_000])
    with pytest.raises(ValueError, match="Unknown analyzer"):
        MilvusBM25Index(str(tmp_path / "o.db"), analyzer="klingon")
    saved = index.save(tmp_path / "saved")
    again = MilvusBM25Index.load(saved)
    assert len(again) == 4
    np.testing.assert_array_equal(again.search(["cat"], 2)[0], index.search(["cat"], 2)[0])


def test_load_checks_settings_and_count(index, tmp_path):
    saved = index.save(tmp_path / "saved")
    settings = json.loads((saved / "milvus_bm25.json").read_text())
    assert list(settings) == [
        "format_version",
        "backend",
        "uri",
        "collection",
        "db_name",
        "analyzer",
        "k1",
        "b",
        "count",
    ]
    assert settings["backend"] == "milvus_bm25" and settings["count"] == 4
    again = MilvusBM25Index.load(saved)
    assert (again.analyzer, again.k1, again.b) == ("en", 1.5, 0.75)
    again.delete(["a"])  # the collection changes behind the saved settings
    with pytest.raises(
        ValueError, match=r"at '.*bm25\.db' holds 3 documents but .* recorded 4; it was changed"
    ):
        MilvusBM25Index.load(saved)
    (saved / "milvus_bm25.json").write_text(json.dumps({**settings, "format_version": 9}))
    with pytest.raises(ValueError, match="unsupported format version; expected 1"):
        MilvusBM25Index.load(saved)
    del settings["k1"]
    (saved / "milvus_bm25.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match=r"milvus_bm25\.json is corrupted \(KeyError\('k1'\)\)"):
        MilvusBM25Index.load(saved)
    with pytest.raises(ValueError, match="lies inside"):
        index.save(tmp_path)
