"""Filtered search on the Milvus backend (real Milvus Lite): never outside the filter, k filled.

The collection holds ids and vectors only, so the filter reaches Milvus as ``id in [...]``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from simcse_rag.index.filters import parse_filter  # noqa: E402
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever  # noqa: E402
from simcse_rag.index.milvus import MilvusDenseIndex  # noqa: E402
from simcse_rag.schema import Passage  # noqa: E402

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

WORDS = ["fever", "child", "cough", "tax", "loan", "bank", "rate", "insulin", "rash", "baby"]
N = 40
QUERIES = ["child fever", "bank loan", "insulin rash"]


def passage(i: int, tenant: int) -> Passage:
    text = " ".join(WORDS[(i * j + j) % len(WORDS)] for j in range(1, 4)) + f" 'quoted\" {i}"
    meta = {"tenant": tenant, "year": 2000 + i % 6}
    if i % 9 == 0:
        del meta["tenant"]
    return Passage(f"p'{i}\"", text, meta)  # ids with quotes: the expression must escape them


@pytest.fixture(scope="module")
def retriever(tiny_encoder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("milvus")
    dense = MilvusDenseIndex(tiny_encoder.dim, str(folder / "v.db"), index_type="HNSW")
    config = HybridConfig(query_backend="torch")
    passages = [passage(i, i % 4) for i in range(N)]
    return HybridRetriever.from_passages(passages, tiny_encoder, config=config, dense_index=dense)


def check(retriever, spec, k):
    flt = parse_filter(spec)
    allowed = {p.id for p in retriever.passages if flt.matches(p.metadata)}
    for mode in ("hybrid", "dense"):
        for hits in retriever.search_batch(QUERIES, k=k, mode=mode, filter=spec):
            assert {h.id for h in hits} <= allowed
            assert len(hits) == min(k, len(allowed))


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tenant=st.integers(0, 4),
    year=st.integers(1999, 2006),
    k=st.integers(1, 15),
    moves=st.lists(st.tuples(st.integers(0, N - 1), st.integers(0, 4)), max_size=3),
)
def test_milvus_filtered_search_stays_inside(retriever, tenant, year, k, moves):
    for i, new_tenant in moves:  # upserts change metadata; deletes shrink the allowed set
        retriever.add([passage(i, new_tenant)])
        retriever.delete([passage((i + 7) % N, 0).id])
    check(retriever, {"tenant": tenant}, k)
    check(retriever, {"$or": [{"tenant": tenant}, {"year": {"$lt": year}}]}, k)


def test_milvus_filter_after_save_and_load(retriever, tiny_encoder, tmp_path):
    spec = {"tenant": {"$in": [1, 2]}}
    before = [[h.id for h in r] for r in retriever.search_batch(QUERIES, k=6, filter=spec)]
    loaded = HybridRetriever.load(retriever.save(tmp_path / "idx"), tiny_encoder)
    assert [[h.id for h in r] for r in loaded.search_batch(QUERIES, k=6, filter=spec)] == before
    check(loaded, spec, 6)
