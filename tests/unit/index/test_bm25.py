"""BM25Index: search semantics, upsert/delete, persistence, rank-bm25 parity."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from simcse_rag.corpus import read_corpus
from simcse_rag.index.bm25 import BM25Index
from simcse_rag.index.tokenizers import TOKENIZER_VERSION

DOCS = {
    "fever": "My child has a high fever and a cough at night.",
    "tax": "Dividend income is taxed at a lower rate than salary.",
    "vaccine": "The measles vaccine is given to children at twelve months.",
    "cash": "Cash flow from operations rose in the fourth quarter.",
}


@pytest.fixture(params=["bm25s", "rank_bm25"])
def index(request: pytest.FixtureRequest) -> BM25Index:
    idx = BM25Index(tokenizer="en", backend=request.param)
    idx.add(list(DOCS), list(DOCS.values()))
    return idx


def test_finds_the_matching_document(index: BM25Index) -> None:
    ids, scores = index.search(["fevers and coughs", "taxes on dividends"], k=2)
    assert ids.shape == scores.shape == (2, 2)
    assert ids.dtype == object and scores.dtype == np.float32
    assert ids[0, 0] == "fever" and ids[1, 0] == "tax"
    assert scores[0, 0] > 0 and np.all(np.diff(scores, axis=1) <= 0)


def test_tiny_corpus_still_scores() -> None:
    # rank-bm25's own idf is 0 for a term in 1 of 2 documents; ours (Lucene idf) is not.
    for backend in ("bm25s", "rank_bm25"):
        idx = BM25Index("en", backend)
        idx.add(["a", "b"], ["apple pie", "banana bread"])
        ids, scores = idx.search(["apple"], k=1)
        assert ids[0, 0] == "a" and scores[0, 0] > 0


def test_k_is_clamped_and_validated(index: BM25Index) -> None:
    ids, scores = index.search(["fever"], k=50)
    assert ids.shape == (1, len(DOCS))
    assert set(ids[0]) == set(DOCS)
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            index.search(["fever"], k=bad)


def test_empty_index_and_empty_query() -> None:
    idx = BM25Index("en")
    ids, scores = idx.search(["anything"], k=5)
    assert ids.shape == (1, 0) and scores.shape == (1, 0)
    idx.add(["a"], ["alpha"])
    ids, scores = idx.search([""], k=5)
    assert ids.shape == (1, 1) and scores[0, 0] == 0
    ids, _ = idx.search([], k=5)
    assert ids.shape == (0, 1)


def test_upsert_and_delete(index: BM25Index) -> None:
    index.add(["tax"], ["Vaccines for babies and toddlers"])
    assert len(index) == len(DOCS)
    ids, _ = index.search(["dividend"], k=1)
    assert ids[0, 0] != "tax"
    ids, _ = index.search(["toddlers"], k=1)
    assert ids[0, 0] == "tax"
    assert index.delete(["fever", "missing"]) == 1
    assert "fever" not in index and len(index) == len(DOCS) - 1
    ids, _ = index.search(["fever cough"], k=10)
    assert "fever" not in set(ids[0])
    assert index.delete(["fever"]) == 0


def test_bad_input(index: BM25Index) -> None:
    with pytest.raises(ValueError, match="2 ids but 1 texts"):
        index.add(["x", "y"], ["one"])
    with pytest.raises(ValueError, match="Duplicate id 'x'"):
        index.add(["x", "x"], ["one", "two"])
    with pytest.raises(TypeError, match="wrap a single query"):
        index.search("fever", k=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Unknown BM25 backend"):
        BM25Index(backend="lucene")
    with pytest.raises(ValueError, match="b must be in"):
        BM25Index(b=2.0)
    with pytest.raises(ValueError, match="k1 must be a positive number, got True"):
        BM25Index(k1=True)


def test_chinese_documents() -> None:
    idx = BM25Index("auto")
    idx.add(["zh1", "zh2", "en1"], ["儿童发烧怎么办", "糖尿病患者的饮食", "child fever advice"])
    ids, _ = idx.search(["小孩发烧"], k=1)
    assert ids[0, 0] == "zh1"
    ids, _ = idx.search(["糖尿病 diet"], k=1)
    assert ids[0, 0] == "zh2"


@pytest.mark.parametrize("backend", ["bm25s", "rank_bm25"])
def test_save_load_round_trip(index: BM25Index, tmp_path: Path, backend: str) -> None:
    index.save(tmp_path / "bm25")
    assert not list((tmp_path / "bm25").glob("*.pkl"))
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.backend == index.backend and len(loaded) == len(index)
    queries = ["children fevers", "cash quarter", "nothing matches zzz"]
    for a, b in zip(index.search(queries, k=3), loaded.search(queries, k=3), strict=False):
        np.testing.assert_array_equal(a, b)
    loaded.add(["new"], ["quarterly cash dividends"])  # still updatable after loading
    assert loaded.search(["quarterly"], k=1)[0][0, 0] == "new"


def test_load_rejects_corruption(index: BM25Index, tmp_path: Path) -> None:
    folder = index.save(tmp_path / "bm25")
    (folder / "offsets.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="offsets.npy"):
        BM25Index.load(folder)
    folder = index.save(tmp_path / "bm25b")
    config = json.loads((folder / "bm25.json").read_text())
    config["count"] = 99
    (folder / "bm25.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="ids.json"):
        BM25Index.load(folder)
    with pytest.raises(ValueError, match="does not exist"):
        BM25Index.load(tmp_path / "nowhere")


def test_rank_bm25_parity_on_shared_data(shared_data: Path) -> None:
    """Both backends give the same top-10 (up to ties) on a slice of real finance data."""
    corpus = read_corpus(shared_data / "tatqa_fin_dev" / "corpus.jsonl")[:600]
    queries = [
        json.loads(line)["text"]
        for line in (shared_data / "tatqa_fin_dev" / "queries.jsonl").read_text().splitlines()[:40]
    ]
    fast, slow = BM25Index("auto", "bm25s"), BM25Index("auto", "rank_bm25")
    for idx in (fast, slow):
        idx.add([p.id for p in corpus], [p.text for p in corpus])
    f_ids, f_scores = fast.search(queries, k=10)
    s_ids, s_scores = slow.search(queries, k=10)
    np.testing.assert_allclose(f_scores, s_scores, rtol=1e-4, atol=1e-5)
    for row in range(len(queries)):
        # Same documents at every score level: equal up to the order of tied scores.
        cut = f_scores[row, -1]
        strict_f = {d for d, s in zip(f_ids[row], f_scores[row], strict=False) if s > cut + 1e-5}
        strict_s = {d for d, s in zip(s_ids[row], s_scores[row], strict=False) if s > cut + 1e-5}
        assert strict_f == strict_s


def test_scale_smoke() -> None:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(2000)]
    docs = [" ".join(rng.choices(words, k=30)) for _ in range(3000)]
    idx = BM25Index("en")
    idx.add([str(i) for i in range(len(docs))], docs)
    ids, _ = idx.search([docs[123]], k=1)
    assert ids[0, 0] == "123"


def test_saved_index_records_tokenizer_version(tmp_path: Path) -> None:
    idx = BM25Index("en")
    idx.add(["a", "b"], ["vitamin b 12 deficiency", "iron deficiency"])
    folder = idx.save(tmp_path / "bm25")
    config = json.loads((folder / "bm25.json").read_text())
    assert config["tokenizer_version"] == TOKENIZER_VERSION
    assert BM25Index.load(folder).tokenizer_version == TOKENIZER_VERSION


def test_index_saved_before_versions_loads_with_the_old_rule(tmp_path: Path) -> None:
    """An index written without ``tokenizer_version`` was built with rule 1 (single letters
    kept): it loads, and its queries and new documents are tokenized by that rule."""
    old = BM25Index("en", tokenizer_version=1)
    old.add(["a", "b"], ["vitamin b deficiency", "vitamin d deficiency"])
    folder = old.save(tmp_path / "bm25")
    config = json.loads((folder / "bm25.json").read_text())
    del config["tokenizer_version"]
    (folder / "bm25.json").write_text(json.dumps(config))
    loaded = BM25Index.load(folder)
    assert loaded.tokenizer_version == 1
    assert loaded.search(["vitamin d"], k=1)[0][0, 0] == "b"  # "d" is still a term
    loaded.add(["c"], ["vitamin k"])
    assert loaded.search(["k"], k=1)[0][0, 0] == "c"


def test_index_from_a_newer_version_says_how_to_rebuild(tmp_path: Path) -> None:
    idx = BM25Index("en")
    idx.add(["a"], ["iron deficiency"])
    folder = idx.save(tmp_path / "bm25")
    config = json.loads((folder / "bm25.json").read_text())
    config["tokenizer_version"] = 99
    (folder / "bm25.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="tokenizer version 99.*simcse-rag index build"):
        BM25Index.load(folder)


@pytest.mark.parametrize("backend", ["bm25s", "rank_bm25"])
def test_a_repeated_query_term_counts_once_per_occurrence(backend: str) -> None:
    """As in Lucene, bm25s and rank-bm25: "dementia ... dementia" weighs the word twice, so the
    passage about it beats one matching the query's other, single word."""
    idx = BM25Index("en", backend, query_tf=True)
    idx.add(["other", "dementia"], ["anyone can get it", "dementia of the elderly"])
    once = idx.scores("dementia")
    twice = idx.scores("dementia. Is dementia inherited")
    np.testing.assert_allclose(twice, 2 * once, rtol=1e-6)
    assert idx.search(["dementia dementia anyone"], k=1)[0][0, 0] == "dementia"
    distinct = BM25Index("en", backend, query_tf=False)
    distinct.add(["other", "dementia"], ["anyone can get it", "dementia of the elderly"])
    np.testing.assert_allclose(distinct.scores("dementia dementia"), once, rtol=1e-6)


def test_new_indexes_count_repeated_query_terms_by_default() -> None:
    """The default is Lucene's scoring: a repeated query word weighs once per occurrence."""
    idx = BM25Index("en")
    assert idx.query_tf is True
    idx.add(["other", "dementia"], ["anyone can get it", "dementia of the elderly"])
    np.testing.assert_allclose(
        idx.scores("dementia dementia"), 2 * idx.scores("dementia"), rtol=1e-6
    )


def test_query_tf_is_saved_and_old_indexes_keep_distinct_terms(tmp_path: Path) -> None:
    """Indexes save ``query_tf``; an index saved before it existed counted each distinct
    query term once and still does after loading."""
    idx = BM25Index("en", query_tf=True)
    idx.add(["a", "b"], ["iron deficiency", "iron iron supplements"])
    folder = idx.save(tmp_path / "bm25")
    config = json.loads((folder / "bm25.json").read_text())
    assert config["query_tf"] is True and BM25Index.load(folder).query_tf is True
    del config["query_tf"]
    (folder / "bm25.json").write_text(json.dumps(config))
    old = BM25Index.load(folder)
    assert old.query_tf is False
    np.testing.assert_allclose(old.scores("iron iron"), old.scores("iron"), rtol=1e-6)
    with pytest.raises(TypeError, match="query_tf must be True or False, got 'yes'"):
        BM25Index("en", query_tf="yes")  # type: ignore[arg-type]


def _saved_terms(index: BM25Index, folder: Path) -> tuple[list[str], list[list[str]]]:
    """The saved vocabulary (by id) and each saved document as its terms."""
    index.save(folder)
    vocab = json.loads((folder / "vocab.json").read_text())
    flat, offsets = np.load(folder / "tokens.npy"), np.load(folder / "offsets.npy")
    docs = [[vocab[t] for t in flat[a:b]] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    return vocab, docs


def test_terms_numbered_in_first_appearance_order_across_batches(tmp_path: Path) -> None:
    """Tokenizing a batch apart from the index (tokenize_batch, as a build does beside the
    encoder) numbers new terms as tokenizing into the index one text at a time would."""
    first = ["fever and cough at night", "儿童发烧怎么办 fever", ""]
    second = ["cough syrup for children", "发烧 dividends tax", "night night fever"]
    index = BM25Index()
    index.add(["a", "b", "c"], first)
    batch = index.tokenize_batch(second, yield_gil=True)
    index.add_tokenized(["d", "e", "a"], batch)  # "a" replaced (upsert)
    vocab, docs = _saved_terms(index, tmp_path / "bm25")
    expected_vocab = list(dict.fromkeys(t for text in first + second for t in index.tokenize(text)))
    assert vocab == expected_vocab
    assert docs == [index.tokenize(t) for t in (second[2], first[1], first[2], *second[:2])]
    with pytest.raises(ValueError, match="texts"):
        index.add_tokenized(["x"], batch)  # 1 id for 3 documents
