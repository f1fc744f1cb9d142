"""Reciprocal rank fusion: hand-computed scores, weights, dedupe, ties, errors."""

from __future__ import annotations

import pytest

from simcse_rag.index.fusion import (
    distribution_based_fusion,
    fuse,
    reciprocal_rank_fusion,
    relative_score_fusion,
)


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


# ---------------------------------------------------------------- score-based fusion methods
RANKINGS = {
    "dense": [("a", 0.9), ("b", 0.5), ("c", 0.1)],
    "bm25": [("c", 10.0), ("a", 4.0), ("d", 2.0)],
}


def test_relative_score_hand_computed() -> None:
    # dense min-max over [0.1, 0.9]: a 1, b 0.5, c 0; bm25 over [2, 10]: c 1, a 0.25, d 0.
    hits = fuse(RANKINGS, "relative_score", weights={"dense": 1.0, "bm25": 2.0})
    scores = {h.id: h.score for h in hits}
    assert scores == pytest.approx({"a": 1.0 + 2 * 0.25, "b": 0.5, "c": 2.0, "d": 0.0})
    assert [h.id for h in hits] == ["c", "a", "b", "d"]
    assert hits[0].sources["bm25"].rank == 1 and hits[0].sources["bm25"].score == 10.0
    assert hits[0].sources["dense"].rank == 3 and hits[0].sources["dense"].score == 0.1
    assert relative_score_fusion(RANKINGS, weights={"bm25": 2.0}) == hits


def test_dist_based_hand_computed() -> None:
    def scaled(scores: list[float]) -> list[float]:  # mean +- 3 population std, as LlamaIndex
        mean = sum(scores) / len(scores)
        std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
        lo, hi = mean - 3 * std, mean + 3 * std
        return [(s - lo) / (hi - lo) for s in scores]

    dense, bm25 = scaled([0.9, 0.5, 0.1]), scaled([10.0, 4.0, 2.0])
    assert dense[1] == pytest.approx(0.5) and dense[0] == pytest.approx(0.704124, abs=1e-6)
    hits = fuse(RANKINGS, "dist_based")
    scores = {h.id: h.score for h in hits}
    assert scores == pytest.approx(
        {"a": dense[0] + bm25[1], "b": dense[1], "c": dense[2] + bm25[0], "d": bm25[2]}
    )
    # unlike min-max, c's 0.1 in dense is not squashed to 0: a (0.70 + 0.43) beats c (0.30 + 0.73)
    assert [h.id for h in hits] == ["a", "c", "b", "d"]
    assert distribution_based_fusion(RANKINGS) == hits


def test_score_methods_give_a_lone_or_flat_list_full_marks() -> None:
    for method in ("relative_score", "dist_based"):
        hits = fuse({"dense": [("a", 0.0)], "bm25": [("b", 3.0), ("c", 3.0)]}, method)
        assert [h.score for h in hits] == [1.0, 1.0, 1.0]
        # equal fused scores: best source rank first (a and b were rank 1, c rank 2), then id
        assert [h.id for h in hits] == ["a", "b", "c"]


def test_ties_break_by_best_rank_before_id() -> None:
    hits = fuse({"s": [("b", 1.0), ("a", 1.0)]}, "relative_score")
    assert [h.id for h in hits] == ["b", "a"]  # same score; b was ranked first


def test_unknown_method_and_limit() -> None:
    with pytest.raises(ValueError, match="Unknown fusion method 'sum'.*rrf, relative_score"):
        fuse(RANKINGS, "sum")
    assert [h.id for h in fuse(RANKINGS, "relative_score", limit=2)] == ["a", "c"]
    assert len(fuse({"dense": [], "bm25": []}, "dist_based")) == 0


def _z_top(scores: list[float]) -> float:
    mean = sum(scores) / len(scores)
    std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
    return (max(scores) - mean) / std


def test_peak_multipliers_hand_computed() -> None:
    # dense is flat (top barely above the rest), bm25 peaked (one clear winner)
    rankings = {
        "dense": [("a", 0.60), ("b", 0.59), ("c", 0.58), ("d", 0.10)],
        "bm25": [("b", 20.0), ("a", 2.0), ("c", 1.0), ("d", 0.5)],
    }
    zd, zb = _z_top([0.60, 0.59, 0.58, 0.10]), _z_top([20.0, 2.0, 1.0, 0.5])
    mean = (zd + zb) / 2
    plain = fuse(rankings, "rrf", k=60)
    peaked = fuse(rankings, "rrf_peak", k=60)
    assert {h.id: h.score for h in peaked} == pytest.approx(
        {
            "a": zd / mean / 61 + zb / mean / 62,
            "b": zd / mean / 62 + zb / mean / 61,
            "c": (zd + zb) / mean / 63,
            "d": (zd + zb) / mean / 64,
        }
    )
    # plain RRF ties a and b (rank 1 + rank 2 each) and breaks the tie by id; the peaked leg wins
    assert [h.id for h in plain][:2] == ["a", "b"]
    assert [h.id for h in peaked][:2] == ["b", "a"]
    dist = {h.id: h.score for h in fuse(rankings, "dist_based")}
    dist_peak = fuse(rankings, "dist_peak")
    assert dist_peak[0].id == "b"
    assert dist_peak[0].score != pytest.approx(dist["b"])


def test_peak_methods_leave_equal_peaks_and_weights_alone() -> None:
    same = {"dense": [("a", 3.0), ("b", 2.0), ("c", 1.0)], "bm25": [("c", 30.0), ("b", 20.0)]}
    # z of the top: dense (3 - 2) / 0.816 = 1.22 and bm25 (30 - 25) / 5 = 1; scaled to mean 1
    zd, zb = _z_top([3.0, 2.0, 1.0]), _z_top([30.0, 20.0])
    hits = fuse(same, "rrf_peak", k=0, weights={"dense": 2.0})
    assert {h.id: h.score for h in hits}["a"] == pytest.approx(2.0 * zd / ((zd + zb) / 2))
    flat = {"dense": [("a", 1.0), ("b", 0.5)], "bm25": [("b", 4.0), ("a", 2.0)]}  # z = 1 each
    assert [(h.id, h.score) for h in fuse(flat, "rrf_peak")] == [
        (h.id, pytest.approx(h.score)) for h in fuse(flat, "rrf")
    ]


def test_peak_methods_with_a_lone_or_flat_source_keep_multiplier_one() -> None:
    lone = {"dense": [("a", 0.5)], "bm25": [("b", 3.0), ("c", 1.0)]}
    # dense has one candidate (no peak); bm25 is the only defined peak, so its multiplier is 1
    assert fuse(lone, "dist_peak") == fuse(lone, "dist_based")
    flat = {"dense": [("a", 0.5), ("b", 0.5)], "bm25": [("b", 3.0), ("c", 3.0)]}
    assert fuse(flat, "rrf_peak") == fuse(flat, "rrf")
    assert fuse({"dense": [], "bm25": []}, "dist_peak") == []
