"""Streaming index builds: passages are encoded and inserted a chunk at a time, and neither
building nor saving an index holds a matrix of the whole corpus's vectors."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simcse_rag.index import passage_vectors
from simcse_rag.index.bm25 import BM25Index
from simcse_rag.index.cache import EmbeddingCache
from simcse_rag.index.dense import DenseIndex
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever
from simcse_rag.schema import Passage

TORCH = HybridConfig(passage_backend="torch", query_backend="torch")


class RecordingEncoder:
    """Delegates to a real encoder and records how many texts each ``encode`` call got."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        self.calls.append(len(texts))
        return self.inner.encode(texts, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class RecordingDense(DenseIndex):
    """A FAISS DenseIndex that records the rows of every ``add``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.adds: list[int] = []

    def add(self, ids: Any, vectors: np.ndarray) -> None:
        self.adds.append(len(ids))
        super().add(ids, vectors)


class HashEncoder:
    """A fast stand-in model: a deterministic unit vector of 384 dims per text (the size of
    all-MiniLM-L6-v2's), so memory is dominated by vectors as with a real model."""

    dim = 384
    name_or_path = "hash-encoder"

    def fingerprint(self) -> str:
        return "hash-encoder-v1"

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            out[i] = np.random.default_rng(seed).standard_normal(self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _passages(n: int, start: int = 0) -> list[Passage]:
    return [Passage(f"d{i}", f"passage number {i} about topic{i % 50}") for i in range(start, n)]


def test_add_encodes_and_inserts_a_chunk_at_a_time(
    tiny_encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passage_vectors, "CHUNK_SIZE", 3)
    encoder = RecordingEncoder(tiny_encoder)
    dense = RecordingDense(tiny_encoder.dim, "flat")
    passages = _passages(10)
    retriever = HybridRetriever.from_passages(passages, encoder, config=TORCH, dense_index=dense)
    assert encoder.calls == [3, 3, 3, 1]
    assert dense.adds == [3, 3, 3, 1]
    vectors = tiny_encoder.encode([p.text for p in passages])
    ids, scores = retriever.dense_index.search(vectors, 1)
    assert list(ids[:, 0]) == [p.id for p in passages]
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)
    # An upsert of cached texts encodes nothing and still inserts a chunk at a time.
    encoder.calls.clear()
    retriever.add(passages[:4])
    assert encoder.calls == []
    assert dense.adds[4:] == [3, 1]
    assert len(retriever) == 10


def test_untrained_ivf_takes_every_vector_in_its_first_add(
    tiny_encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passage_vectors, "CHUNK_SIZE", 16)
    dense = RecordingDense(tiny_encoder.dim, "ivf")
    retriever = HybridRetriever.from_passages(
        _passages(100), tiny_encoder, config=TORCH, dense_index=dense
    )
    assert dense.adds == [100]  # trained on all 100, not on the first chunk of 16
    retriever.add(_passages(140, start=100))
    assert dense.adds[1:] == [16, 16, 8]
    assert len(retriever.dense_index) == 140


def test_insert_refuses_texts_without_cached_vectors() -> None:
    cache = EmbeddingCache("fp", 4)
    cache.put(["a"], np.ones((1, 4)), "onnx-int8")
    with pytest.raises(KeyError, match="no onnx-int8 vector cached for text 'b'"):
        passage_vectors.insert(DenseIndex(4, "flat"), cache, ["1", "2"], ["a", "b"], "onnx-int8")


def _traced_peak_above_end(run: Any) -> int:
    """Bytes allocated by ``run()`` at its peak beyond what is still held when it returns."""
    tracemalloc.start()
    try:
        run()
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - end


def test_build_and_save_hold_no_corpus_matrix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passage_vectors, "CHUNK_SIZE", 1024)
    n = 20_000
    corpus_matrix = n * HashEncoder.dim * 4  # what one (n, dim) float32 matrix would take
    passages = _passages(n)
    retriever = HybridRetriever(HashEncoder(), TORCH)
    build = _traced_peak_above_end(lambda: retriever.add(passages))
    assert len(retriever) == n
    save = _traced_peak_above_end(lambda: retriever.save(tmp_path / "idx"))
    # A chunk's matrix plus BM25's transient token lists; a corpus matrix would be 30 MB.
    assert build < corpus_matrix / 3, f"build held {build} bytes beyond the index"
    assert save < corpus_matrix / 3, f"save held {save} bytes beyond the index"
    loaded = HybridRetriever.load(tmp_path / "idx", HashEncoder())
    probe = HashEncoder().encode([passages[7].text])
    assert loaded.dense_index.search(probe, 1)[0][0, 0] == "d7"
    assert np.array_equal(loaded.cache.lookup([passages[7].text])[0], probe)


def test_coverage_check_reuses_the_encoders_token_ids(
    tiny_encoder: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Passages the model cannot read: the build tokenizes each text once (the encode's token
    ids serve the coverage check), still encodes a chunk at a time and still warns."""
    monkeypatch.setattr(passage_vectors, "CHUNK_SIZE", 3)
    tokenized: list[int] = []
    real_tokenize = tiny_encoder.tokenize

    def counting_tokenize(texts: Any, **kwargs: Any) -> Any:
        tokenized.append(len(texts))
        return real_tokenize(texts, **kwargs)

    monkeypatch.setattr(tiny_encoder, "tokenize", counting_tokenize)
    passages = [Passage(f"k{i}", f"안녕하세요 {i} 감기") for i in range(7)]
    with caplog.at_level("WARNING", logger="simcse_rag.index.coverage"):
        retriever = HybridRetriever.from_passages(passages, tiny_encoder, config=TORCH)
    assert tokenized == [3, 3, 1]  # the encode's chunks; no second tokenization
    assert sum("reads only" in r.getMessage() for r in caplog.records) == 1
    texts = [p.text for p in passages]
    # The same vectors as encoding each chunk on its own (the path without the token hook).
    expected = np.concatenate([tiny_encoder.encode(texts[i : i + 3]) for i in range(0, 7, 3)])
    vectors, missing = retriever.cache.lookup(texts)
    assert missing == [] and np.array_equal(vectors, expected)


def test_bm25_tokenizes_while_the_passages_encode(tiny_encoder: Any) -> None:
    """BM25's tokenizing (jieba, the stemmer) overlaps the encoding instead of following it;
    the index is the one a plain BM25 add makes."""
    import threading

    started = threading.Event()
    overlapped: list[bool] = []

    class WaitingEncoder(RecordingEncoder):
        def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
            overlapped.append(started.wait(timeout=10))
            return super().encode(texts, **kwargs)

    retriever = HybridRetriever(WaitingEncoder(tiny_encoder), config=TORCH)
    bm25 = retriever.bm25_index
    real = bm25.tokenize_batch

    def tokenize_batch(texts: Any, **kwargs: Any) -> Any:
        started.set()
        return real(texts, **kwargs)

    bm25.tokenize_batch = tokenize_batch  # type: ignore[method-assign]
    passages = [*_passages(5), Passage("zh", "儿童发烧怎么办")]
    retriever.add(passages)
    assert overlapped == [True]
    reference = BM25Index()
    reference.add([p.id for p in passages], [p.text for p in passages])
    queries = ["passage topic3", "发烧", "number 4"]
    for got, want in zip(bm25.search(queries, k=6), reference.search(queries, k=6), strict=True):
        np.testing.assert_array_equal(got, want)
