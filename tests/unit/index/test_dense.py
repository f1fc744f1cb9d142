"""DenseIndex: kinds, clamping, delete/upsert, persistence and corrupted loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simcse_rag.index import dense as dense_mod
from simcse_rag.index.dense import DenseIndex

DIM = 16


def _unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _ids(n: int) -> list[str]:
    return [f"doc-{i}" for i in range(n)]


def _exact(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw", "auto"])
def test_nearest_neighbours(kind: str) -> None:
    x = _unit(400)
    index = DenseIndex(DIM, kind)
    index.add(_ids(400), x)
    ids, scores = index.search(x[:5], k=3)
    assert ids.shape == scores.shape == (5, 3)
    assert ids.dtype == object and scores.dtype == np.float32
    assert list(ids[:, 0]) == _ids(5)  # every vector is its own best match
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_flat_is_exact() -> None:
    x, q = _unit(300), _unit(7, seed=1)
    index = DenseIndex(DIM, "flat")
    index.add(_ids(300), x)
    ids, scores = index.search(q, k=10)
    expected = np.asarray(_ids(300), dtype=object)[_exact(x, q, 10)]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.sort(q @ x.T, axis=1)[:, ::-1][:, :10], atol=1e-5)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_k_larger_than_index_is_clamped_never_minus_one(kind: str) -> None:
    x = _unit(60)
    index = DenseIndex(DIM, kind)
    index.add(_ids(60), x)
    index.delete(_ids(60)[:10])
    ids, scores = index.search(x[:2], k=1000)
    assert ids.shape == (2, 50)
    assert all(isinstance(i, str) and i in index for i in ids.ravel())
    assert len(set(ids[0])) == 50


def test_k_validation_and_empty() -> None:
    index = DenseIndex(DIM)
    ids, scores = index.search(_unit(2), k=5)
    assert ids.shape == (2, 0)
    index.add(_ids(3), _unit(3))
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            index.search(_unit(1), k=bad)
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        index.search(_unit(1)[0], k=1)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_delete_and_upsert(kind: str) -> None:
    x = _unit(200)
    index = DenseIndex(DIM, kind)
    index.add(_ids(200), x)
    assert index.delete(["doc-0", "doc-1", "nope", "doc-0"]) == 2
    assert len(index) == 198 and "doc-0" not in index
    ids, _ = index.search(x[:2], k=5)
    assert "doc-0" not in set(ids[0]) and "doc-1" not in set(ids[1])
    # upsert: doc-5 now points the other way
    index.add(["doc-5"], -x[5:6])
    assert len(index) == 198
    ids, scores = index.search(x[5:6], k=198)
    assert ids[0, -1] == "doc-5" and scores[0, -1] == pytest.approx(-1.0, abs=1e-5)
    assert index.delete([]) == 0


def test_hnsw_tombstones_compact() -> None:
    x = _unit(100)
    index = DenseIndex(DIM, "hnsw")
    index.add(_ids(100), x)
    index.delete(_ids(100)[:20])
    assert index._tombstones == 20  # below the compaction threshold: tombstones, filtered
    index.delete(_ids(100)[20:40])
    assert index._tombstones == 0 and index._index.ntotal == 60  # rebuilt from live vectors
    ids, _ = index.search(x[50:51], k=1)
    assert ids[0, 0] == "doc-50"


def test_auto_switches_to_hnsw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dense_mod, "AUTO_EXACT_LIMIT", 50)
    x = _unit(80)
    index = DenseIndex(DIM, "auto")
    index.add(_ids(40), x[:40])
    assert index.structure == "flat"
    index.add(_ids(80)[40:], x[40:])
    assert index.structure == "hnsw" and len(index) == 80
    ids, _ = index.search(x[:3], k=1)
    assert list(ids[:, 0]) == _ids(3)


def test_ivf_needs_training_vectors() -> None:
    index = DenseIndex(DIM, "ivf", nlist=64)
    with pytest.raises(ValueError, match="needs at least 64 vectors"):
        index.add(_ids(10), _unit(10))


def test_settings_refuse_bools_and_keep_numpy_ints_as_ints(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hnsw_m must be a positive integer, got True"):
        DenseIndex(DIM, hnsw_m=True)
    with pytest.raises(ValueError, match="nlist must be a positive integer or None, got True"):
        DenseIndex(DIM, "ivf", nlist=True)
    index = DenseIndex(np.int64(DIM), "flat", ef_search=np.int64(64))
    assert type(index.dim) is int and type(index.ef_search) is int
    index.add(_ids(3), _unit(3))
    index.save(tmp_path / "dense")  # the JSON config holds plain ints


def test_add_validation() -> None:
    index = DenseIndex(DIM)
    with pytest.raises(ValueError, match="2 ids but 3 vectors"):
        index.add(["a", "b"], _unit(3))
    with pytest.raises(ValueError, match="Duplicate id 'a'"):
        index.add(["a", "a"], _unit(2))
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        index.add(["a"], np.zeros((1, 8), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        index.add(["a"], np.full((1, DIM), np.nan))
    with pytest.raises(ValueError, match="Unknown dense index kind"):
        DenseIndex(DIM, "annoy")
    # float64 and non-contiguous input are accepted
    index.add(["a", "b"], _unit(4).astype(np.float64)[::2])
    assert len(index) == 2


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_load_round_trip(kind: str, tmp_path: Path) -> None:
    x = _unit(150)
    index = DenseIndex(DIM, kind)
    index.add(_ids(150), x)
    index.delete(["doc-3"])
    folder = index.save(tmp_path / "dense")
    assert sorted(p.name for p in folder.iterdir()) == ["dense.faiss", "dense.json", "ids.json"]
    loaded = DenseIndex.load(folder)
    assert len(loaded) == 149 and loaded.structure == index.structure
    a_ids, a_scores = index.search(x[:10], k=10)
    b_ids, b_scores = loaded.search(x[:10], k=10)
    np.testing.assert_array_equal(a_ids, b_ids)
    np.testing.assert_allclose(a_scores, b_scores)
    loaded.add(["new"], x[3:4])
    assert loaded.search(x[3:4], k=1)[0][0, 0] == "new"


def test_load_rejects_corruption(tmp_path: Path) -> None:
    index = DenseIndex(DIM, "flat")
    index.add(_ids(20), _unit(20))
    folder = index.save(tmp_path / "d1")
    (folder / "dense.faiss").write_bytes(b"not a faiss file")
    with pytest.raises(ValueError, match="dense.faiss is corrupted"):
        DenseIndex.load(folder)
    folder = index.save(tmp_path / "d2")
    mapping = json.loads((folder / "ids.json").read_text())
    mapping["ids"] = mapping["ids"][:-1]
    (folder / "ids.json").write_text(json.dumps(mapping))
    with pytest.raises(ValueError, match="holds 19 ids, config says 20"):
        DenseIndex.load(folder)
    folder = index.save(tmp_path / "d3")
    (folder / "dense.json").write_text("{")
    with pytest.raises(ValueError, match="unreadable or corrupted"):
        DenseIndex.load(folder)


def test_concurrent_single_queries_each_search_on_one_faiss_thread(monkeypatch) -> None:
    """OpenMP's thread count belongs to the calling thread: two searches running at once from
    two threads (as from an executor) must each run on one FAISS thread, and each thread's own
    setting comes back afterwards."""
    import threading

    import faiss

    index = DenseIndex(DIM, "flat")
    index.add(_ids(50), _unit(50))
    both_inside = threading.Barrier(2, timeout=10)
    raw_search = index._raw_search
    seen: dict[str, int] = {}
    after: dict[str, int] = {}

    def recording_search(q: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        both_inside.wait()  # both threads are inside their search now
        seen[threading.current_thread().name] = faiss.omp_get_max_threads()
        both_inside.wait()
        return raw_search(q, fetch)

    monkeypatch.setattr(index, "_raw_search", recording_search)

    def worker() -> None:
        faiss.omp_set_num_threads(4)
        index.search(_unit(1, seed=1), 3)
        after[threading.current_thread().name] = faiss.omp_get_max_threads()

    workers = [threading.Thread(target=worker, name=f"w{i}") for i in range(2)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert seen == {"w0": 1, "w1": 1}
    assert after == {"w0": 4, "w1": 4}
