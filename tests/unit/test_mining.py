"""Hard-negative mining: config validation, each filter on hand-made arrays, determinism."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from simcse_rag.mining import (
    FILTERS,
    MiningConfig,
    is_near_duplicate,
    mine_hard_negatives,
    select_negatives,
)
from simcse_rag.pairs import TrainingPair


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_negatives": 0}, "num_negatives"),
        ({"num_negatives": True}, "MiningConfig.num_negatives must be a positive integer"),
        ({"range_min": -1}, "range_min"),
        ({"range_min": True}, "MiningConfig.range_min must be an integer >= 0, got True"),
        ({"range_min": 48, "range_max": 50, "num_negatives": 3}, "widen range_max"),
        ({"relative_margin": 1.5}, "relative_margin"),
        ({"duplicate_threshold": 0.0}, "duplicate_threshold"),
        ({"sampling": "best"}, "sampling"),
        ({"mode": "sparse"}, "mode"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MiningConfig(**kwargs)


def _arrays():
    ids = ["pos", "dup", "a", "b", "c", "d", "e", "f"]
    scores = np.array([0.90, 0.89, 0.95, 0.88, 0.80, 0.70, 0.60, 0.50])
    ranks = np.arange(1, 9)
    duplicate = [False, True, False, False, False, False, False, False]
    return ids, scores, ranks, duplicate


def test_each_filter_is_counted() -> None:
    ids, scores, ranks, duplicate = _arrays()
    # pos score 0.9, margin 0.05 -> threshold 0.855: "a" (0.95) and "b" (0.88) are too close;
    # max_score 0.9 also catches "a" first (max_score runs before the margin).
    config = MiningConfig(
        num_negatives=2, range_min=0, range_max=7, relative_margin=0.05, max_score=0.9
    )
    chosen, removed = select_negatives(
        ids,
        scores,
        ranks,
        positive_ids={"pos"},
        positive_score=0.9,
        duplicate=duplicate,
        config=config,
        rng=random.Random(0),
    )
    assert [ids[i] for i in chosen] == ["c", "d"]
    assert removed == {
        "positive_id": 1,
        "duplicate": 1,
        "rank_window": 1,  # "f" has rank 8 > range_max 7
        "max_score": 1,  # "a"
        "relative_margin": 1,  # "b"
        "not_sampled": 1,  # "e" survived but only 2 are kept
    }
    assert sum(removed.values()) + len(chosen) == len(ids)
    assert tuple(removed) == FILTERS


def test_range_min_skips_the_top_candidates() -> None:
    ids, scores, ranks, _ = _arrays()
    config = MiningConfig(num_negatives=3, range_min=5, range_max=50, relative_margin=None)
    chosen, removed = select_negatives(
        ids,
        scores,
        ranks,
        positive_ids=set(),
        positive_score=1.0,
        duplicate=[False] * len(ids),
        config=config,
        rng=random.Random(0),
    )
    assert [ids[i] for i in chosen] == ["d", "e", "f"]
    assert removed["rank_window"] == 5


def test_no_filters_keeps_top_ranked() -> None:
    ids, scores, ranks, _ = _arrays()
    config = MiningConfig(num_negatives=3, relative_margin=None)
    chosen, _ = select_negatives(
        ids,
        scores,
        ranks,
        positive_ids=set(),
        positive_score=0.0,
        duplicate=[False] * len(ids),
        config=config,
        rng=random.Random(0),
    )
    assert chosen == [0, 1, 2]


def test_random_sampling_is_seeded() -> None:
    ids = [f"d{i}" for i in range(30)]
    scores = np.linspace(0.5, 0.1, 30)
    ranks = np.arange(1, 31)
    config = MiningConfig(num_negatives=4, sampling="random", relative_margin=None)

    def run(seed: int) -> list[int]:
        return select_negatives(
            ids,
            scores,
            ranks,
            positive_ids=set(),
            positive_score=1.0,
            duplicate=[False] * 30,
            config=config,
            rng=random.Random(seed),
        )[0]

    first = run(3)
    assert first == run(3)
    assert len(set(first)) == 4 and first == sorted(first)
    assert any(run(s) != first for s in range(4, 10))
    assert first != [0, 1, 2, 3] or run(4) != [0, 1, 2, 3]


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="same length"):
        select_negatives(
            ["a", "b"],
            np.array([0.1]),
            np.array([1, 2]),
            positive_ids=set(),
            positive_score=1.0,
            duplicate=[False, False],
            config=MiningConfig(),
            rng=random.Random(0),
        )


def test_near_duplicates() -> None:
    text = "Aspirin is used to reduce fever and relieve mild to moderate pain. " * 3
    assert is_near_duplicate(text, "  " + text.upper() + "  ")
    assert is_near_duplicate(text, text.replace("mild", "mild,"), threshold=0.9)
    assert not is_near_duplicate(text, text.replace("mild", "mild,"), threshold=1.0)
    assert not is_near_duplicate(text, "Insulin lowers blood sugar in people with diabetes.")
    zh = "阿司匹林用于退烧和缓解轻度至中度疼痛。" * 3
    assert is_near_duplicate(zh, zh + "。")
    assert not is_near_duplicate(zh, "胰岛素可以降低糖尿病患者的血糖。")


def _corpus() -> dict[str, str]:
    texts = {
        f"d{i}": f"passage number {i} about topic {i % 3} with words {i * 7}" for i in range(12)
    }
    texts["copy"] = texts["d0"]  # the positive's text under another id
    return texts


def _fake_retrieval(texts: dict[str, str]):
    order = ["copy", "d1", "d0", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", "d11"]
    sims = {doc: 0.9 - 0.05 * i for i, doc in enumerate(order)}

    def search(queries):
        return [list(order) for _ in queries]

    def score(queries, id_lists, positives):
        cand = [np.array([sims[d] for d in ids]) for ids in id_lists]
        pos = np.array([sims[pid] if pid else 0.9 for pid, _ in positives])
        return cand, pos

    return search, score


def test_mine_excludes_every_positive_and_copies() -> None:
    texts = _corpus()
    search, score = _fake_retrieval(texts)
    pairs = [
        TrainingPair("q1", "query one", texts["d0"], "d0"),
        TrainingPair("q1", "query one", texts["d1"], "d1"),
    ]
    config = MiningConfig(num_negatives=2, relative_margin=None)
    result = mine_hard_negatives(pairs, search=search, score=score, texts=texts, config=config)
    first = result.examples[0]
    negatives = [n.id for n in first.negatives]
    # d0 and d1 are both positives of q1; "copy" duplicates d0's text.
    assert negatives == ["d2", "d3"]
    assert [n.rank for n in first.negatives] == [4, 5]
    assert result.removed["positive_id"] == 4  # d0 and d1, for each of the two pairs
    assert result.removed["duplicate"] == 1  # "copy" is a duplicate of d0 only
    assert result.candidates == 26
    assert result.short == 0
    # For the d1 pair, "copy" is not a duplicate of d1 and is the best-ranked survivor.
    assert [n.id for n in result.examples[1].negatives] == ["copy", "d2"]


def test_mine_relative_margin_removes_close_candidates(tmp_path) -> None:
    texts = _corpus()
    search, score = _fake_retrieval(texts)
    pairs = [TrainingPair("q1", "query one", texts["d5"], "d5")]  # positive score 0.60
    config = MiningConfig(num_negatives=2, relative_margin=0.1)  # threshold 0.54
    result = mine_hard_negatives(pairs, search=search, score=score, texts=texts, config=config)
    negs = result.examples[0].negatives
    assert all(n.score <= 0.54 + 1e-9 for n in negs)
    assert [n.id for n in negs] == ["d7", "d8"]
    assert result.removed["relative_margin"] == 7  # copy, d1, d0, d2, d3, d4, d6 (0.55)
    path = result.write_jsonl(tmp_path / "mined.jsonl")
    row = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert row["query"] == "query one" and row["positive_id"] == "d5"
    assert [n["id"] for n in row["negatives"]] == ["d7", "d8"]
    assert {"score", "rank", "text"} <= set(row["negatives"][0])
    stats = result.stats()
    assert stats["negatives_kept"] == 2 and stats["removed"]["relative_margin"] == 7


def test_mine_counts_pairs_short_of_negatives() -> None:
    texts = _corpus()
    search, score = _fake_retrieval(texts)
    pairs = [TrainingPair("q1", "query one", texts["d0"], "d0")]
    config = MiningConfig(num_negatives=3, relative_margin=None, max_score=0.6, range_max=8)
    result = mine_hard_negatives(pairs, search=search, score=score, texts=texts, config=config)
    # Within rank 8, only d5 (0.60) and d6 (0.55) pass max_score 0.6 (d0 is the positive).
    assert [n.id for n in result.examples[0].negatives] == ["d5", "d6"]
    assert result.short == 1


def test_relative_margin_is_taken_from_the_querys_weakest_positive() -> None:
    # q1 has two positives: d1 (0.85) and d5 (0.60). A candidate scoring 0.75 outscores one of
    # q1's true answers, so it is no safe negative for either pair (sentence-transformers'
    # semantics); taking the margin from d1 alone would have kept d2 (0.75) for the d1 pair.
    texts = _corpus()
    search, score = _fake_retrieval(texts)
    pairs = [
        TrainingPair("q1", "query one", texts["d1"], "d1"),
        TrainingPair("q1", "query one", texts["d5"], "d5"),
    ]
    config = MiningConfig(num_negatives=2, relative_margin=0.1)  # threshold 0.54 for both
    result = mine_hard_negatives(pairs, search=search, score=score, texts=texts, config=config)
    assert [[n.id for n in e.negatives] for e in result.examples] == [["d7", "d8"]] * 2
    assert [e.positive_score for e in result.examples] == pytest.approx([0.85, 0.60])


def test_config_stores_numpy_integers_as_plain_ints() -> None:
    config = MiningConfig(num_negatives=np.int64(2), range_min=np.int64(1))
    assert type(config.num_negatives) is int and type(config.range_min) is int
    json.dumps(config.__dict__)
