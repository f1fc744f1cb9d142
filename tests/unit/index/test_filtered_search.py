"""Filtered search never returns a passage outside its filter, and fills k when k pass.

Property-tested with Hypothesis on every FAISS kind and mode, after add / delete / upsert (which
changes metadata), after save / load, and while another thread writes. Milvus Lite: see
``test_milvus_filters.py``.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcse_rag.index.bm25 import BM25Index
from simcse_rag.index.dense import DenseIndex
from simcse_rag.index.filters import parse_filter
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever
from simcse_rag.schema import Passage

WORDS = ["fever", "child", "cough", "tax", "loan", "bank", "rate", "insulin", "dose", "rash"]
WORDS += ["sleep", "baby"]
N = 60
QUERIES = ["child fever", "bank loan rate", "insulin", "sleep baby rash"]
KINDS = {
    "flat": lambda dim: DenseIndex(dim, "flat"),
    # one probed list of four: most filtered searches must widen to reach k allowed vectors
    "ivf": lambda dim: DenseIndex(dim, "ivf", nlist=4, nprobe=1),
    # small efSearch: selective filters cut the graph apart and need the exact fallback
    "hnsw": lambda dim: DenseIndex(dim, "hnsw", hnsw_m=4, ef_search=4),
}


def passage(i: int, tenant: int, year: int) -> Passage:
    text = " ".join(WORDS[(i * j + j) % len(WORDS)] for j in range(1, 5))
    meta = {"tenant": tenant, "year": year, "day": f"2024-01-{1 + i % 28:02d}"}
    if i % 7 == 0:
        del meta["tenant"]  # a missing key never matches
    return Passage(f"p{i}", text, meta)


BASE = [passage(i, i % 5, 2000 + i % 9) for i in range(N)]

FILTERS = st.one_of(
    st.builds(lambda t: {"tenant": t}, st.integers(0, 5)),
    st.builds(lambda ts: {"tenant": {"$in": ts}}, st.lists(st.integers(0, 5), max_size=3)),
    st.builds(lambda t: {"tenant": {"$ne": t}}, st.integers(0, 5)),
    st.builds(lambda y: {"year": {"$gte": y}}, st.integers(1999, 2009)),
    st.builds(lambda d: {"day": {"$lt": f"2024-01-{d:02d}"}}, st.integers(1, 28)),
    st.builds(
        lambda t, y: {"$or": [{"tenant": t}, {"year": {"$lt": y}}]},
        st.integers(0, 4),
        st.integers(2000, 2004),
    ),
)


# PyTorch for queries and passages: the concurrent writer below encodes on every add, and one
# batched PyTorch call keeps these filter tests fast (passage backends have their own tests).
CONFIG = HybridConfig(query_backend="torch", passage_backend="torch")


@pytest.fixture(scope="module")
def warm(tiny_encoder):
    """A retriever whose embedding cache holds every text the tests index."""
    retriever = HybridRetriever(tiny_encoder, CONFIG)
    retriever.add(BASE)
    return retriever


def build(tiny_encoder, warm, kind: str) -> HybridRetriever:
    retriever = HybridRetriever(tiny_encoder, CONFIG, dense_index=KINDS[kind](tiny_encoder.dim))
    retriever.cache.merge(warm.cache)  # no re-encoding per example
    retriever.add(BASE)
    return retriever


def check(retriever: HybridRetriever, spec: dict, k: int) -> None:
    flt = parse_filter(spec)
    allowed = {p.id for p in retriever.passages if flt.matches(p.metadata)}
    for mode in ("hybrid", "dense", "bm25"):
        for hits in retriever.search_batch(QUERIES, k=k, mode=mode, filter=spec, candidates=k):
            ids = [h.id for h in hits]
            assert set(ids) <= allowed, (mode, spec, set(ids) - allowed)
            assert all(flt.matches(h.metadata) for h in hits)
            if mode != "bm25":  # BM25 alone drops passages sharing no word with the query
                assert len(ids) == min(k, len(allowed)), (mode, spec, len(ids), len(allowed))


UPDATES = st.lists(
    st.tuples(st.sampled_from(["delete", "upsert"]), st.integers(0, N + 9), st.integers(0, 4)),
    max_size=8,
)


@pytest.mark.parametrize("kind", list(KINDS))
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=FILTERS, k=st.integers(1, 12), updates=UPDATES)
def test_filtered_search_stays_inside_the_filter(tiny_encoder, warm, kind, spec, k, updates):
    retriever = build(tiny_encoder, warm, kind)
    for op, i, tenant in updates:
        if op == "delete":
            retriever.delete([f"p{i}"])
        else:  # an upsert moves the passage to another tenant (same text: cached vector)
            retriever.add([passage(i % N, tenant, 2000 + i % 9)])
    check(retriever, spec, k)


@pytest.mark.parametrize("kind", list(KINDS))
def test_filter_survives_save_and_load(tiny_encoder, warm, kind, tmp_path):
    retriever = build(tiny_encoder, warm, kind)
    retriever.delete(["p1", "p2"])
    retriever.add([passage(3, 4, 2001)])
    spec = {"tenant": 4}
    before = [[h.id for h in r] for r in retriever.search_batch(QUERIES, k=5, filter=spec)]
    loaded = HybridRetriever.load(retriever.save(tmp_path / "idx"), tiny_encoder)
    after = [[h.id for h in r] for r in loaded.search_batch(QUERIES, k=5, filter=spec)]
    assert after == before
    check(loaded, spec, 5)


def test_upsert_that_changes_metadata_moves_the_passage_between_filters(tiny_encoder, warm):
    retriever = build(tiny_encoder, warm, "flat")
    assert "p1" in {h.id for h in retriever.search("x", k=N, mode="dense", filter={"tenant": 1})}
    retriever.add([passage(1, 3, 2001)])
    hits = retriever.search("x", k=N, mode="dense", filter={"tenant": 1})
    assert "p1" not in {h.id for h in hits}
    hits = retriever.search("x", k=N, mode="dense", filter={"tenant": 3})
    assert "p1" in {h.id for h in hits}


def test_filter_matching_nothing_returns_no_hits(tiny_encoder, warm):
    retriever = build(tiny_encoder, warm, "hnsw")
    assert retriever.search_batch(QUERIES, k=3, filter={"tenant": 99}) == [[]] * len(QUERIES)


def test_bad_filter_raises_before_searching(tiny_encoder, warm):
    retriever = build(tiny_encoder, warm, "flat")
    with pytest.raises(ValueError, match=r'filter\["year"\]\["\$gt"\]'):
        retriever.search("fever", filter={"year": {"$gt": "abc"}})


@pytest.mark.parametrize("kind", list(KINDS))
def test_filtered_search_while_another_thread_writes(tiny_encoder, warm, kind):
    retriever = build(tiny_encoder, warm, kind)
    stop = threading.Event()
    failures: list[str] = []

    def writer() -> None:
        flip = 0
        while not stop.is_set():
            flip += 1
            retriever.add([passage(i, (i + flip) % 5, 2000) for i in range(0, N, 3)])
            retriever.delete([f"p{flip % N}"])
            # Let the searching thread take the GIL between writes: a writer spinning without a
            # pause starved it (the test's time swung by minutes with the scheduler).
            time.sleep(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for round_ in range(25):
            tenant = round_ % 5
            for hits in retriever.search_batch(QUERIES, k=8, filter={"tenant": tenant}):
                # a hit carries the metadata the search saw: it must pass the filter
                failures += [h.id for h in hits if h.metadata.get("tenant") != tenant]
    finally:
        stop.set()
        thread.join()
    assert failures == []


def test_bm25_allowed_rows_pick_the_best_allowed_documents():
    index = BM25Index()
    index.add(["a", "b", "c", "d"], ["fever fever", "fever", "cough", "fever cough"])
    ids, scores = index.search(["fever"], 2, allowed={"b", "c", "zzz"})
    assert ids.tolist() == [["b", "c"]]
    assert scores[0, 0] > 0 and scores[0, 1] == 0


@pytest.mark.parametrize("kind", list(KINDS))
def test_dense_allowed_gives_exact_top_k_among_allowed(kind):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(200, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = {
        "flat": DenseIndex(16, "flat"),
        "ivf": DenseIndex(16, "ivf", nlist=8, nprobe=1),
        "hnsw": DenseIndex(16, "hnsw", hnsw_m=4, ef_search=4),
    }[kind]
    ids = [f"v{i}" for i in range(200)]
    index.add(ids, vectors)
    index.delete(["v3"])  # HNSW: a tombstone, which must stay excluded
    allowed = {f"v{i}" for i in range(0, 200, 37)} | {"v3"}
    found, _ = index.search(vectors[:5], 5, allowed=allowed)
    live = sorted(allowed - {"v3"}, key=lambda i: int(i[1:]))
    rows = [int(i[1:]) for i in live]
    for q in range(5):
        sims = vectors[rows] @ vectors[q]
        expected = [live[j] for j in np.argsort(-sims, kind="stable")[:5]]
        assert found[q].tolist() == expected


def test_indexes_reuse_an_allowed_set_only_until_the_next_write():
    allowed = frozenset({"a", "b"})  # the same object each call, as FilterIdCache hands it out
    bm25 = BM25Index()
    bm25.add(["a", "b", "c"], ["fever", "fever cough", "fever"])
    assert sorted(bm25.search(["fever"], 5, allowed=allowed)[0][0].tolist()) == ["a", "b"]
    bm25.delete(["a"])
    assert bm25.search(["fever"], 5, allowed=allowed)[0].tolist() == [["b"]]
    bm25.add(["a"], ["fever"])
    assert sorted(bm25.search(["fever"], 5, allowed=allowed)[0][0].tolist()) == ["a", "b"]

    dense = DenseIndex(4, "flat")
    eye = np.eye(4, dtype=np.float32)
    dense.add(["a", "b", "c"], eye[:3])
    assert sorted(dense.search(eye[:1], 5, allowed=allowed)[0][0].tolist()) == ["a", "b"]
    dense.delete(["a"])
    assert dense.search(eye[:1], 5, allowed=allowed)[0].tolist() == [["b"]]
    dense.add(["a"], eye[3:4])  # back under a new FAISS label
    found, scores = dense.search(eye[3:4], 5, allowed=allowed)
    assert found.tolist() == [["a", "b"]] and scores[0, 0] == pytest.approx(1.0)
