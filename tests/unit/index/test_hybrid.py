"""HybridRetriever: modes, hits, upsert/delete, embedding cache, save/load and mismatches."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simcse_rag.index.dense import DenseIndex
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever
from simcse_rag.schema import Passage

PASSAGES = [
    Passage("p1", "the child has a fever and a cough", {"lang": "en"}),
    Passage("p2", "dividend income and tax rate", {"lang": "en"}),
    Passage("p3", "儿童发烧怎么办", {"lang": "zh"}),
    Passage("p4", "insulin dose for diabetes", {}),
    Passage("p5", "bank loan interest rate", {}),
]


class CountingEncoder:
    """Delegates to a real encoder and counts the texts it is asked to encode."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.encoded: list[str] = []

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        self.encoded.extend(texts)
        return self.inner.encode(texts, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def retriever(tiny_encoder: Any) -> HybridRetriever:
    # RRF, whose scores these tests compute by hand (the default fusion is tested on its own)
    return HybridRetriever.from_passages(PASSAGES, tiny_encoder, config=HybridConfig(fusion="rrf"))


def test_hybrid_hits_carry_everything(retriever: HybridRetriever) -> None:
    hits = retriever.search("fever cough", k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    top = hits[0]
    assert top.id == "p1"  # BM25 matches two words; its rank-1 dominates the fused score
    assert top.text == PASSAGES[0].text and top.metadata == {"lang": "en"}
    assert set(top.sources) == {"dense", "bm25"} and top.sources["bm25"].rank == 1
    expected = 1 / (60 + top.sources["dense"].rank) + 1 / (60 + 1)
    assert top.score == pytest.approx(expected)
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))


def test_modes(retriever: HybridRetriever) -> None:
    dense = retriever.search("fever", k=10, mode="dense")
    assert len(dense) == len(PASSAGES) and all(set(h.sources) == {"dense"} for h in dense)
    assert dense[0].score == pytest.approx(dense[0].sources["dense"].score)
    bm25 = retriever.search("fever", k=10, mode="bm25")
    assert [h.id for h in bm25] == ["p1"]  # only documents sharing a term
    assert retriever.search("发烧", k=1, mode="bm25")[0].id == "p3"


@pytest.mark.parametrize("backend", ["torch", "onnx"])  # onnx-int8: test_query_encoder.py
def test_query_vectors_match_encode(tiny_encoder: Any, backend: str) -> None:
    retriever = HybridRetriever.from_passages(
        PASSAGES, tiny_encoder, config=HybridConfig(query_backend=backend)
    )
    queries = ["fever", "a much longer query about dividend tax rates"]
    np.testing.assert_allclose(
        retriever.encode_queries(queries), tiny_encoder.encode(queries), atol=2e-5
    )


def test_batch_equals_single(retriever: HybridRetriever) -> None:
    queries = ["fever", "", "tax rate", "发烧"]
    batch = retriever.search_batch(queries, k=3)
    assert batch[1] == []
    for q, hits in zip(queries, batch, strict=False):
        single = retriever.search(q, k=3)
        assert [h.id for h in hits] == [h.id for h in single]
        assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-6)


def test_bad_arguments(retriever: HybridRetriever) -> None:
    assert retriever.search("   ", k=3) == []
    with pytest.raises(ValueError, match="k must be a positive integer"):
        retriever.search("fever", k=0)
    with pytest.raises(ValueError, match="Unknown mode 'sparse'"):
        retriever.search("fever", mode="sparse")
    with pytest.raises(ValueError, match="candidates"):
        retriever.search("fever", candidates=0)
    with pytest.raises(TypeError, match="search_batch"):
        retriever.search(["fever"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty corpus"):
        HybridRetriever.from_passages([], retriever.encoder)
    with pytest.raises(ValueError, match="Duplicate passage id 'p1'"):
        retriever.add([PASSAGES[0], PASSAGES[0]])
    with pytest.raises(TypeError, match="expected simcse_rag.schema.Passage"):
        retriever.add([("id", "text")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="tokenizer 'fr'"):
        HybridConfig(tokenizer="fr")
    with pytest.raises(ValueError, match="weights"):
        HybridConfig(weights={"dense": -1.0})


def test_add_upsert_delete(retriever: HybridRetriever) -> None:
    retriever.add(
        [Passage("p2", "measles vaccine schedule", {"v": 2}), Passage("p6", "stock market")]
    )
    assert len(retriever) == 6
    assert retriever.get("p2").metadata == {"v": 2}
    hits = retriever.search("measles vaccine", k=1, mode="bm25")
    assert hits[0].id == "p2"
    assert retriever.search("dividend", k=5, mode="bm25") == []
    assert retriever.delete(["p1", "zzz"]) == 1
    assert "p1" not in retriever and len(retriever) == 5
    for mode in ("hybrid", "dense", "bm25"):
        assert "p1" not in {h.id for h in retriever.search("fever cough", k=10, mode=mode)}
    with pytest.raises(KeyError, match="p1"):
        retriever.get("p1")


def test_k_larger_than_corpus(retriever: HybridRetriever) -> None:
    hits = retriever.search("rate", k=50, candidates=2)
    assert len(hits) == len(PASSAGES)  # candidates raised to k
    assert len({h.id for h in hits}) == len(hits)


def test_embedding_cache_avoids_reencoding(tiny_encoder: Any, tmp_path: Path) -> None:
    counting = CountingEncoder(tiny_encoder)
    retriever = HybridRetriever.from_passages(PASSAGES, counting)
    assert sorted(counting.encoded) == sorted(p.text for p in PASSAGES)
    counting.encoded.clear()
    # same texts under new ids and metadata, plus one new text: only the new text is encoded
    retriever.add([Passage("x1", PASSAGES[0].text), Passage("x2", "brand new text")])
    assert counting.encoded == ["brand new text"]
    retriever.save(tmp_path / "idx")
    # a rebuild in a fresh retriever with the saved cache re-encodes nothing
    counting.encoded.clear()
    fresh = HybridRetriever(counting)
    assert fresh.load_cache(tmp_path / "idx") == len(PASSAGES) + 1
    fresh.add(retriever.passages)
    assert counting.encoded == []
    # identical texts within one call are encoded once
    other = HybridRetriever(counting)
    other.add([Passage("a", "same words"), Passage("b", "same words")])
    assert counting.encoded == ["same words"]


def test_cache_from_other_model_is_ignored(tiny_encoder: Any, tmp_path: Path) -> None:
    retriever = HybridRetriever.from_passages(PASSAGES, tiny_encoder)
    retriever.save(tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "embeddings.json").read_text())
    meta["fingerprint"] = "someothermodel"
    (tmp_path / "idx" / "embeddings.json").write_text(json.dumps(meta))
    fresh = HybridRetriever(CountingEncoder(tiny_encoder))
    assert fresh.load_cache(tmp_path / "idx") == 0


@pytest.mark.parametrize("dense_index", ["flat", "hnsw"])
def test_save_load_round_trip(tiny_encoder: Any, tmp_path: Path, dense_index: str) -> None:
    config = HybridConfig(
        dense_index=dense_index, tokenizer="auto", rrf_k=30, weights={"dense": 2.0, "bm25": 1.0}
    )
    retriever = HybridRetriever.from_passages(PASSAGES, tiny_encoder, config=config)
    retriever.delete(["p5"])
    folder = retriever.save(tmp_path / "idx")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["model"]["fingerprint"] == tiny_encoder.fingerprint()
    assert manifest["counts"]["passages"] == 4
    assert manifest["counts"]["embeddings"] == 4  # the deleted passage's vector is not saved
    assert not list(folder.rglob("*.pkl"))
    loaded = HybridRetriever.load(folder, tiny_encoder)
    assert loaded.config == config and len(loaded) == 4
    for q in ("fever", "tax", "发烧"):
        a, b = retriever.search(q, k=4), loaded.search(q, k=4)
        assert [(h.id, round(h.score, 6)) for h in a] == [(h.id, round(h.score, 6)) for h in b]


def test_load_with_other_model_fails(tiny_encoder: Any, tmp_path: Path) -> None:
    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.testing import build_tiny_bert

    folder = HybridRetriever.from_passages(PASSAGES, tiny_encoder).save(tmp_path / "idx")
    other = SimCSEEncoder.from_pretrained(build_tiny_bert(tmp_path / "other", seed=1), device="cpu")
    with pytest.raises(ValueError, match="fingerprint .* load it with the same model or rebuild"):
        HybridRetriever.load(folder, other)


def test_load_corrupted(tiny_encoder: Any, tmp_path: Path) -> None:
    folder = HybridRetriever.from_passages(PASSAGES, tiny_encoder).save(tmp_path / "idx")
    with pytest.raises(ValueError, match="not a simcse-rag index"):
        HybridRetriever.load(tmp_path, tiny_encoder)
    lines = (folder / "passages.jsonl").read_text().splitlines()
    (folder / "passages.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="inconsistent"):
        HybridRetriever.load(folder, tiny_encoder)
    (folder / "passages.jsonl").write_text("{broken\n")
    with pytest.raises(ValueError, match="passages.jsonl:1: malformed JSON"):
        HybridRetriever.load(folder, tiny_encoder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format version 99"):
        HybridRetriever.load(folder, tiny_encoder)


def test_failed_save_keeps_existing_index(
    tiny_encoder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    retriever = HybridRetriever.from_passages(PASSAGES, tiny_encoder)
    folder = retriever.save(tmp_path / "idx")
    before = (folder / "manifest.json").read_text()
    retriever.add([Passage("p9", "new one")])

    def boom(_folder: Path) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(retriever.cache, "write", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        retriever.save(folder)
    assert (folder / "manifest.json").read_text() == before
    assert len(HybridRetriever.load(folder, tiny_encoder)) == len(PASSAGES)


def test_loading_a_faiss_index_never_imports_the_milvus_backend(
    tiny_encoder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    retriever = HybridRetriever.from_passages(PASSAGES, tiny_encoder)
    folder = retriever.save(tmp_path / "idx")
    # None in sys.modules makes any import of the module fail.
    monkeypatch.setitem(sys.modules, "simcse_rag.index.milvus", None)
    loaded = HybridRetriever.load(folder, tiny_encoder)
    assert isinstance(loaded.dense_index, DenseIndex)
    for q in ("fever", "tax"):
        assert [h.id for h in loaded.search(q, k=3)] == [h.id for h in retriever.search(q, k=3)]


def test_config_checks_numbers_like_the_rest_of_the_api() -> None:
    assert HybridConfig(batch_size=np.int64(8)).to_dict()["batch_size"] == 8
    json.dumps(HybridConfig(batch_size=np.int64(8)).to_dict())  # stays JSON-serialisable
    assert HybridConfig(rrf_k=60).to_dict()["rrf_k"] == 60  # saved as written
    with pytest.raises(ValueError, match="rrf_k must be a finite number >= 0, got inf"):
        HybridConfig(rrf_k=float("inf"))
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got True"):
        HybridConfig(batch_size=True)
    with pytest.raises(ValueError, match=r"weights\['bm25'\] must be a finite number >= 0"):
        HybridConfig(weights={"bm25": float("nan")})


def test_with_query_settings_keeps_indexes(tiny_encoder: Any) -> None:
    counting = CountingEncoder(tiny_encoder)
    retriever = HybridRetriever.from_passages(
        PASSAGES, counting, config=HybridConfig(query_backend="torch", fusion="rrf")
    )
    counting.encoded.clear()
    twin = retriever.with_query_settings(rrf_k=5, weights={"dense": 0.0, "bm25": 1.0})
    assert counting.encoded == []  # nothing re-encoded
    assert twin.config.rrf_k == 5 and retriever.config.rrf_k == 60  # the original is unchanged
    assert twin.dense_index is retriever.dense_index and twin.bm25_index is retriever.bm25_index
    # With a zero dense weight the fused score is BM25's alone: 1 / (5 + rank).
    top = twin.search("fever cough", k=3)[0]
    assert top.id == "p1" and top.sources["bm25"].rank == 1
    assert top.score == pytest.approx(1 / (5 + 1))
    # Updates through one are seen by the other (shared indexes).
    twin.add([Passage("p9", "a brand new passage")])
    assert "p9" in retriever and len(retriever) == len(PASSAGES) + 1
    assert twin.with_query_settings(query_backend="onnx").config.query_backend == "onnx"
    with pytest.raises(ValueError, match="tokenizer cannot change on a built retriever"):
        retriever.with_query_settings(tokenizer="zh")
    with pytest.raises(ValueError, match="Unknown HybridConfig field"):
        retriever.with_query_settings(rrfk=5)
    with pytest.raises(ValueError, match="rrf_k must be a finite number >= 0"):
        retriever.with_query_settings(rrf_k=-1)


@pytest.mark.parametrize("fusion", ["relative_score", "dist_based"])
def test_score_fusion_methods_in_search(tiny_encoder: Any, tmp_path: Path, fusion: str) -> None:
    from simcse_rag.index.fusion import fuse

    config = HybridConfig(fusion=fusion, weights={"dense": 0.5, "bm25": 1.0})
    retriever = HybridRetriever.from_passages(PASSAGES, tiny_encoder, config=config)
    query = "fever tax rate"
    legs = {
        mode: [(h.id, h.score) for h in retriever.search(query, k=10, mode=mode)]
        for mode in ("dense", "bm25")
    }
    expected = fuse(legs, fusion, weights={"dense": 0.5, "bm25": 1.0})
    hits = retriever.search(query, k=10)
    assert [(h.id, h.score) for h in hits] == [(h.id, pytest.approx(h.score)) for h in expected]
    assert all(h.sources == e.sources for h, e in zip(hits, expected, strict=True))
    loaded = HybridRetriever.load(retriever.save(tmp_path / "idx"), tiny_encoder)
    assert loaded.config.fusion == fusion


def test_config_fusion_choice() -> None:
    assert HybridConfig().fusion == "dist_peak"  # docs/benchmarks.md, "A default that transfers"
    with pytest.raises(
        ValueError, match="fusion 'sum' unknown; choose one of: rrf, relative_score"
    ):
        HybridConfig(fusion="sum")


def test_query_the_model_cannot_read_is_left_to_bm25(
    tiny_encoder: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Hangul is outside the tiny model's vocabulary ([UNK]): the dense leg gets weight 0 for
    such a query, English queries keep theirs, and one warning names the fix."""
    passages = [*PASSAGES, Passage("k1", "안녕하세요 감기"), Passage("k2", "감기 fever")]
    with caplog.at_level("WARNING", logger="simcse_rag.index.coverage"):
        config = HybridConfig(fusion="rrf")
        retriever = HybridRetriever.from_passages(passages, tiny_encoder, config=config)
        hits = retriever.search("감기", k=10)
        retriever.search("안녕하세요", k=10)
    assert {h.id for h in hits[:2]} == {"k1", "k2"}
    for h in hits:  # the dense leg adds nothing: dense-only candidates score 0
        bm25 = h.sources.get("bm25")
        assert h.score == pytest.approx(1 / (60 + bm25.rank) if bm25 else 0.0)
    warnings = [r for r in caplog.records if "text2vec-base-chinese" in r.getMessage()]
    assert len(warnings) == 1
    english = retriever.search("fever cough", k=3)[0]
    assert english.score == pytest.approx(
        1 / (60 + english.sources["dense"].rank) + 1 / (60 + english.sources["bm25"].rank)
    )
    loaded = HybridRetriever.load(retriever.save(tmp_path / "idx"), tiny_encoder)
    assert [(h.id, h.score) for h in loaded.search("감기", k=10)] == [
        (h.id, pytest.approx(h.score)) for h in hits
    ]


def test_index_saved_before_fusion_existed_keeps_rrf(tiny_encoder: Any, tmp_path: Path) -> None:
    config = HybridConfig(fusion="dist_based")
    retriever = HybridRetriever.from_passages(PASSAGES, tiny_encoder, config=config)
    folder = retriever.save(tmp_path / "idx")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["config"]["fusion"] == "dist_based"
    del manifest["config"]["fusion"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert HybridRetriever.load(folder, tiny_encoder).config.fusion == "rrf"


def test_hybrid_query_with_dense_weight_zero_is_not_encoded(tiny_encoder: Any) -> None:
    """Hangul is [UNK] to the tiny model: in hybrid mode that query's dense weight is 0, so it is
    never encoded and its hits are BM25's; dense mode still encodes it."""
    passages = [*PASSAGES, Passage("k1", "안녕하세요 감기"), Passage("k2", "감기 fever")]
    retriever = HybridRetriever.from_passages(passages, tiny_encoder)
    encoded: list[list[str]] = []
    real = retriever.encode_queries

    def spy(queries: Any) -> Any:
        encoded.append(list(queries))
        return real(queries)

    retriever.encode_queries = spy  # type: ignore[method-assign]
    mixed = retriever.search_batch(["감기", "fever cough"], k=5)
    assert encoded == [["fever cough"]]
    bm25 = retriever.search("감기", k=5, mode="bm25")
    assert [h.id for h in mixed[0]] == [h.id for h in bm25]
    assert all(set(h.sources) == {"bm25"} for h in mixed[0])
    assert "dense" in mixed[1][0].sources
    retriever.search("감기", k=5, mode="dense")
    assert encoded[-1] == ["감기"]
