"""MilvusDenseIndex against a real Milvus Lite (no mocks), plus the DenseBackend contract.

Milvus Lite serves gRPC on 127.0.0.1 (a free port) inside the test process. The ``allow_hosts``
marker states that only loopback is meant; note that pytest-socket guards Python's ``socket``
module only, and gRPC's C core opens its connections itself, so the marker documents the intent
rather than enforces it (the tests pass with or without it, and nothing here names another host).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from simcse_rag.index.backend import DenseBackend  # noqa: E402
from simcse_rag.index.dense import DenseIndex  # noqa: E402
from simcse_rag.index.milvus import MilvusDenseIndex, quote, resolve_uri  # noqa: E402

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

DIM = 8


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact(ids: list[str], vectors: np.ndarray, queries: np.ndarray, k: int) -> list[list[str]]:
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[ids[j] for j in row] for row in order]


@pytest.fixture
def lite_uri(tmp_path) -> str:
    return str(tmp_path / "vectors.db")


@pytest.fixture
def index(lite_uri) -> MilvusDenseIndex:
    idx = MilvusDenseIndex(DIM, lite_uri, index_type="FLAT")
    yield idx
    idx.close()


def test_both_backends_satisfy_the_protocol(index):
    assert isinstance(index, DenseBackend)
    assert isinstance(DenseIndex(DIM, "flat"), DenseBackend)


def test_add_search_matches_exact_inner_product(index):
    rng = np.random.default_rng(0)
    ids = [f"doc-{i}" for i in range(60)]
    vectors = unit(rng, 60)
    index.add(ids, vectors)
    queries = unit(rng, 5)
    got_ids, got_scores = index.search(queries, 7)
    assert got_ids.shape == (5, 7) and got_ids.dtype == object
    assert got_scores.shape == (5, 7) and got_scores.dtype == np.float32
    assert [list(r) for r in got_ids] == exact(ids, vectors, queries, 7)
    want = np.sort(queries @ vectors.T, axis=1)[:, ::-1][:, :7]
    np.testing.assert_allclose(got_scores, want, rtol=1e-5, atol=1e-5)
    assert len(index) == 60 and "doc-3" in index and "nope" not in index


def test_same_results_as_faiss_dense_index(index):
    rng = np.random.default_rng(1)
    ids = [f"d{i}" for i in range(40)]
    vectors = unit(rng, 40)
    faiss_index = DenseIndex(DIM, "flat")
    for backend in (index, faiss_index):
        backend.add(ids, vectors)
        backend.delete(["d5", "d6"])
    queries = unit(rng, 4)
    milvus_ids, milvus_scores = index.search(queries, 10)
    faiss_ids, faiss_scores = faiss_index.search(queries, 10)
    assert milvus_ids.tolist() == faiss_ids.tolist()
    np.testing.assert_allclose(milvus_scores, faiss_scores, atol=1e-5)


def test_upsert_replaces_and_delete_counts(index):
    e = np.eye(DIM, dtype=np.float32)
    index.add(["a", "b", "c"], e[:3])
    index.add(["a"], e[3:4])  # upsert: 'a' now points along axis 3
    assert len(index) == 3
    ids, _ = index.search(e[3:4], 1)
    assert ids[0, 0] == "a"
    _, scores = index.search(e[0:1], 3)
    assert scores.max() == pytest.approx(0.0)  # the old axis-0 vector is gone
    assert index.delete(["a", "zzz", "a"]) == 1
    assert index.delete(["a"]) == 0
    assert len(index) == 2 and "a" not in index


def test_ids_with_quotes_and_unicode_round_trip(index):
    tricky = [
        "it's",
        'say "hi"',
        "back\\slash",
        "中文 id",
        "x] or id != ''",
        "tab\there",
        "new\nline",
    ]
    vectors = unit(np.random.default_rng(2), len(tricky))
    index.add(tricky, vectors)
    assert len(index) == len(tricky)
    assert all(t in index for t in tricky)
    ids, _ = index.search(vectors, 1)
    assert ids[:, 0].tolist() == tricky
    assert index.delete(tricky[:4]) == 4
    assert len(index) == 3 and "it's" not in index and "tab\there" in index
    assert quote('a"b') == '"a\\"b"'


def test_shape_rules_and_errors(index):
    empty_ids, empty_scores = index.search(np.zeros((2, DIM), np.float32), 5)
    assert empty_ids.shape == (2, 0) and empty_scores.shape == (2, 0)
    index.add(["a", "b"], unit(np.random.default_rng(3), 2))
    ids, _ = index.search(unit(np.random.default_rng(4), 3), 50)
    assert ids.shape == (3, 2)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(np.zeros((1, DIM), np.float32), 0)
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        index.search(np.zeros(DIM, np.float32), 1)
    with pytest.raises(ValueError, match="Duplicate id 'x'"):
        index.add(["x", "x"], np.zeros((2, DIM), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        index.add(["y"], np.full((1, DIM), np.nan, np.float32))
    with pytest.raises(TypeError, match="not a single string"):
        index.delete("a")
    with pytest.raises(ValueError, match="2048 UTF-8 bytes"):
        index.add(["x" * 3000], np.zeros((1, DIM), np.float32))
    assert len(index) == 2  # failed calls changed nothing


def test_bad_uris_and_names_give_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match=r"must end in '\.db'"):
        resolve_uri(str(tmp_path / "vectors"))
    with pytest.raises(ValueError, match="does not exist"):
        resolve_uri(str(tmp_path / "missing" / "v.db"))
    with pytest.raises(ValueError, match="unsupported scheme"):
        resolve_uri("ftp://host/x")
    with pytest.raises(ValueError, match="collection name"):
        MilvusDenseIndex(DIM, str(tmp_path / "v.db"), collection="bad-name")
    with pytest.raises(ValueError, match="index_type"):
        MilvusDenseIndex(DIM, str(tmp_path / "v.db"), index_type="DISKANN")


def test_dimension_mismatch_on_existing_collection(lite_uri):
    MilvusDenseIndex(DIM, lite_uri, collection="c1").add(["a"], np.ones((1, DIM), np.float32))
    with pytest.raises(ValueError, match=r"holds 8-d vectors but the model gives 16-d"):
        MilvusDenseIndex(16, lite_uri, collection="c1")


def test_save_load_round_trip_and_validation(index, tmp_path):
    rng = np.random.default_rng(5)
    ids = [f"p{i}" for i in range(30)]
    index.add(ids, unit(rng, 30))
    queries = unit(rng, 3)
    before = index.search(queries, 5)
    saved = index.save(tmp_path / "saved")
    settings = json.loads((saved / "milvus.json").read_text())
    assert settings["count"] == 30 and settings["dim"] == DIM and "token" not in settings
    again = MilvusDenseIndex.load(saved)
    after = again.search(queries, 5)
    assert after[0].tolist() == before[0].tolist()
    np.testing.assert_allclose(after[1], before[1])
    again.delete(["p0"])  # the collection changes behind the saved settings
    with pytest.raises(ValueError, match="holds 29 vectors but .* recorded 30"):
        MilvusDenseIndex.load(saved)
    (saved / "milvus.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupted"):
        MilvusDenseIndex.load(saved)


def test_save_refuses_to_overwrite_its_own_lite_data(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    idx = MilvusDenseIndex(DIM, str(folder / "v.db"))
    with pytest.raises(ValueError, match="lies inside"):
        idx.save(folder)
    assert (folder / "v.db").is_dir()


def test_hnsw_index_type_finds_exact_neighbours_on_small_data(lite_uri):
    rng = np.random.default_rng(6)
    ids = [f"h{i}" for i in range(300)]
    vectors = unit(rng, 300)
    idx = MilvusDenseIndex(
        DIM,
        lite_uri,
        collection="hnsw",
        index_type="HNSW",
        index_params={"M": 16, "efConstruction": 100},
        search_params={"ef": 64},
    )
    idx.add(ids, vectors)
    queries = unit(rng, 10)
    got, _ = idx.search(queries, 10)
    want = exact(ids, vectors, queries, 10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got.tolist(), want, strict=True)])
    assert recall >= 0.95
