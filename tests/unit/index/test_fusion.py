"""Reciprocal rank fusion: hand-computed scores, weights, dedupe, ties, errors."""

from __future__ import annotations

import pytest

from simcse_rag.index.fusion import reciprocal_rank_fusion


def test_hand_computed_scores_and_sources() -> None:
    hits = reciprocal_rank_fusion(
        {"dense": [("a", 0.9), ("b", 0.8), ("c", 0.1)], "bm25": [("c", 12.0), ("a", 3.0)]}, k=60
    )
    scores = {h.id: h.score for h in hits}
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["b"] == pytest.approx(1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert [h.id for h in hits] == ["a", "c", "b"]
    assert [h.rank for h in hits] == [1, 2, 3]
    a = hits[0]
    assert a.sources["dense"].rank == 1 and a.sources["dense"].score == pytest.approx(0.9)
    assert a.sources["bm25"].rank == 2 and a.sources["bm25"].score == pytest.approx(3.0)
    assert "bm25" not in hits[2].sources
    assert a.text == "" and a.metadata == {}


def test_ranks_are_one_based_with_k_zero() -> None:
    hits = reciprocal_rank_fusion({"s": [("x", 1.0), ("y", 0.5)]}, k=0)
    assert hits[0].score == pytest.approx(1.0)
    assert hits[1].score == pytest.approx(0.5)


def test_weights_are_honoured() -> None:
    rankings = {"dense": [("a", 1.0), ("b", 0.5)], "bm25": [("b", 9.0), ("a", 1.0)]}
    even = reciprocal_rank_fusion(rankings, k=1)
    assert even[0].score == pytest.approx(even[1].score)
    tilted = reciprocal_rank_fusion(rankings, k=1, weights={"bm25": 3.0})
    assert [h.id for h in tilted] == ["b", "a"]
    assert tilted[0].score == pytest.approx(1.0 / 3 + 3.0 / 2)
    zero = reciprocal_rank_fusion(rankings, k=1, weights={"dense": 1.0, "bm25": 0.0})
    assert [h.id for h in zero] == ["a", "b"]


def test_duplicates_merge_by_id_keep_first_rank() -> None:
    hits = reciprocal_rank_fusion({"s": [("a", 3.0), ("a", 2.0), ("b", 1.0)]}, k=10)
    assert [h.id for h in hits] == ["a", "b"]
    assert hits[0].score == pytest.approx(1 / 11)
    assert hits[1].score == pytest.approx(1 / 12)  # b is rank 2 once the duplicate is dropped
    assert hits[0].sources["s"].score == 3.0


def test_same_text_different_ids_are_not_merged() -> None:
    hits = reciprocal_rank_fusion({"s": [("id1", 1.0), ("id2", 1.0)]})
    assert {h.id for h in hits} == {"id1", "id2"}


def test_ties_are_deterministic() -> None:
    # a and b tie on fused score; a reached rank 1 somewhere, b only rank 2... then id order.
    r1 = reciprocal_rank_fusion({"x": [("b", 1), ("a", 1)], "y": [("a", 1), ("b", 1)]})
    r2 = reciprocal_rank_fusion({"y": [("a", 1), ("b", 1)], "x": [("b", 1), ("a", 1)]})
    assert [h.id for h in r1] == [h.id for h in r2] == ["a", "b"]
    solo = reciprocal_rank_fusion({"x": [("z", 1)], "y": [("m", 1)]})
    assert [h.id for h in solo] == ["m", "z"]


def test_limit_and_empty() -> None:
    assert reciprocal_rank_fusion({}) == []
    assert reciprocal_rank_fusion({"s": []}) == []
    hits = reciprocal_rank_fusion({"s": [(c, 1.0) for c in "abcdef"]}, limit=2)
    assert [h.id for h in hits] == ["a", "b"]


def test_input_is_not_mutated() -> None:
    rankings = {"s": [("a", 1.0)]}
    reciprocal_rank_fusion(rankings, weights={"s": 2.0})
    assert rankings == {"s": [("a", 1.0)]}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": -1}, "k must be"),
        ({"limit": 0}, "limit"),
        ({"weights": {"nope": 1.0}}, "unknown source"),
        ({"weights": {"s": -1.0}}, "weight for source 's'"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        reciprocal_rank_fusion({"s": [("a", 1.0)]}, **kwargs)


def test_bad_rankings() -> None:
    with pytest.raises(TypeError, match="rankings must map"):
        reciprocal_rank_fusion([("a", 1.0)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pairs"):
        reciprocal_rank_fusion({"s": ["abc"]})  # type: ignore[list-item]
    with pytest.raises(ValueError, match="invalid doc id"):
        reciprocal_rank_fusion({"s": [("", 1.0)]})
