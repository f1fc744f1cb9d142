"""Property-based tests (hypothesis): random add / upsert / delete / search / save-load sequences.

A stateful test drives DenseIndex (flat, exact) and BM25Index through random operations next to a
plain dict model, and checks after every step that:

* the dense results equal brute-force inner product over the model's vectors;
* BM25 results equal those of an index built from scratch over the model's texts (incremental
  updates never drift from a rebuild);
* deleted ids never come back, shapes follow ``min(k, len)``, and a save / load round trip
  (to a folder that already holds an older save) returns the same results.

An HNSW variant checks the invariants that do not depend on exactness (deleted ids never
returned, shapes, ids unique). The quick pass runs in the default suite, the deep pass is
marked ``slow``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from simcse_rag.index.bm25 import BM25Index
from simcse_rag.index.dense import DenseIndex

DIM = 8
WORDS = ["fever", "child", "cough", "tax", "bank", "loan", "儿童", "发烧", "the", "a", "rash"]
doc_ids = st.sampled_from([f"d{i}" for i in range(25)] + ["it's", 'q"x', "中文", "a b"])
texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=8).map(" ".join)
vectors = st.lists(st.integers(-8, 8), min_size=DIM, max_size=DIM).map(
    lambda xs: np.asarray(xs, dtype=np.float32) + np.linspace(0, 1e-3, DIM, dtype=np.float32)
)


def fresh_bm25(model: dict[str, str]) -> BM25Index:
    index = BM25Index("auto")
    if model:
        index.add(list(model), list(model.values()))
    return index


class IndexMachine(RuleBasedStateMachine):
    """Dense (flat) + BM25 under random operations, against a dict model."""

    kind = "flat"

    @initialize()
    def setup(self) -> None:
        self.dense = DenseIndex(DIM, self.kind)
        self.bm25 = BM25Index("auto")
        self.vecs: dict[str, np.ndarray] = {}
        self.texts: dict[str, str] = {}
        self.deleted: set[str] = set()
        self.tmp = Path(tempfile.mkdtemp(prefix="fuzz-index-"))

    @rule(items=st.dictionaries(doc_ids, st.tuples(vectors, texts), min_size=1, max_size=6))
    def add(self, items) -> None:
        ids = list(items)
        self.dense.add(ids, np.stack([items[i][0] for i in ids]))
        self.bm25.add(ids, [items[i][1] for i in ids])
        for i in ids:
            self.vecs[i], self.texts[i] = items[i]
            self.deleted.discard(i)

    @rule(ids=st.lists(doc_ids, max_size=6))
    def delete(self, ids) -> None:
        want = len({i for i in ids if i in self.vecs})
        assert self.dense.delete(ids) == want
        assert self.bm25.delete(ids) == want
        for i in set(ids) & set(self.vecs):
            del self.vecs[i], self.texts[i]
            self.deleted.add(i)

    @rule(query=vectors, k=st.integers(1, 40))
    def search_dense(self, query, k) -> None:
        got_ids, got_scores = self.dense.search(query[None, :], k)
        width = min(k, len(self.vecs))
        assert got_ids.shape == got_scores.shape == (1, width)
        assert np.isfinite(got_scores).all()
        assert not set(got_ids[0]) & self.deleted
        if self.kind == "flat" and width:
            ids = list(self.vecs)
            exact = np.stack([self.vecs[i] for i in ids]) @ query
            # The k-th best score bounds the set: equal scores may come in either order.
            np.testing.assert_allclose(
                got_scores[0], np.sort(exact)[::-1][:width], rtol=1e-5, atol=1e-3
            )
            for doc_id, score in zip(got_ids[0], got_scores[0], strict=True):
                assert abs(float(exact[ids.index(doc_id)]) - float(score)) <= 1e-3

    @rule(query=texts, k=st.integers(1, 40))
    def search_bm25(self, query, k) -> None:
        got_ids, got_scores = self.bm25.search([query], k)
        assert got_ids.shape == (1, min(k, len(self.texts)))
        assert np.isfinite(got_scores).all() and (got_scores >= 0).all()
        assert not set(got_ids[0]) & self.deleted
        if not self.texts:
            return
        # Reference: every document's score from an index built from scratch (ties may order
        # differently, so compare per-id scores and the sorted score list).
        ref_ids, ref_scores = fresh_bm25(self.texts).search([query], len(self.texts))
        ref = dict(zip(ref_ids[0], ref_scores[0].tolist(), strict=True))
        np.testing.assert_allclose(
            got_scores[0], ref_scores[0][: got_scores.shape[1]], rtol=1e-5, atol=1e-6
        )
        for doc_id, score in zip(got_ids[0], got_scores[0].tolist(), strict=True):
            assert abs(ref[doc_id] - score) <= 1e-5 * max(1.0, abs(score))

    @precondition(lambda self: len(self.vecs) > 0)
    @rule()
    def save_and_load(self) -> None:
        probe = np.ones((1, DIM), np.float32)
        before_d = self.dense.search(probe, 50)
        before_b = self.bm25.search(["fever child 儿童"], 50)
        self.dense = DenseIndex.load(self.dense.save(self.tmp / "dense"))
        self.bm25 = BM25Index.load(self.bm25.save(self.tmp / "bm25"))
        after_d = self.dense.search(probe, 50)
        after_b = self.bm25.search(["fever child 儿童"], 50)
        np.testing.assert_allclose(after_d[1], before_d[1], rtol=1e-6)
        assert sorted(after_d[0][0]) == sorted(before_d[0][0])
        np.testing.assert_allclose(after_b[1], before_b[1], rtol=1e-6)

    def teardown(self) -> None:
        # One run = one folder; without this every example of every run leaves one in /tmp.
        if hasattr(self, "tmp"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    @invariant()
    def sizes_agree(self) -> None:
        if hasattr(self, "dense"):
            assert len(self.dense) == len(self.vecs) == len(self.bm25)
            assert all(i in self.dense for i in self.vecs)
            assert not any(i in self.dense for i in self.deleted)


class HnswMachine(IndexMachine):
    kind = "hnsw"


FAST = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
DEEP = settings(
    max_examples=400,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

test_flat_index_sequences = IndexMachine.TestCase
test_flat_index_sequences.settings = FAST
test_hnsw_index_sequences = HnswMachine.TestCase
test_hnsw_index_sequences.settings = FAST


class DeepFlat(IndexMachine):
    pass


class DeepHnsw(HnswMachine):
    pass


test_flat_index_sequences_deep = pytest.mark.slow(DeepFlat.TestCase)
test_flat_index_sequences_deep.settings = DEEP
test_hnsw_index_sequences_deep = pytest.mark.slow(DeepHnsw.TestCase)
test_hnsw_index_sequences_deep.settings = DEEP
