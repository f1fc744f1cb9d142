"""Choosing an adapted retriever's fusion setting on held-back training queries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from simcse_rag.adapt_fusion import (
    MIN_VALIDATION_QUERIES,
    choose_fusion,
    hold_back_validation,
    report_lines,
)
from simcse_rag.datasets import QuerySet
from simcse_rag.index.config import HybridConfig
from simcse_rag.index.model_fusion import read_model_fusion
from simcse_rag.pairs import TrainingPair
from simcse_rag.pseudo_queries import make_pseudo_queries
from tests.unit.test_adapt import TOPICS, synthetic_corpus


@dataclass(frozen=True)
class Prepared:
    train: list[TrainingPair]


def _pairs(n_queries: int, per_query: int = 1) -> list[TrainingPair]:
    return [
        TrainingPair(f"q{i}", f"question {i}", f"passage {i}.{j}", f"d{i}.{j}")
        for i in range(n_queries)
        for j in range(per_query)
    ]


def test_hold_back_takes_a_fifth_of_the_queries_with_all_their_pairs() -> None:
    pairs = _pairs(150, per_query=2)
    prepared, validation = hold_back_validation(Prepared(pairs), seed=0)
    assert validation is not None and len(validation.qrels) == 30
    held = set(validation.qrels)
    assert {p.query_id for p in prepared.train}.isdisjoint(held)
    assert len(prepared.train) == 300 - 2 * 30
    assert all(len(validation.qrels[q]) == 2 for q in held)  # both pairs of a query held back
    again, same = hold_back_validation(Prepared(list(reversed(pairs))), seed=0)
    assert same is not None and set(same.qrels) == held  # seeded, independent of order
    _, other = hold_back_validation(Prepared(pairs), seed=1)
    assert other is not None and set(other.qrels) != held


def test_hold_back_is_capped_and_skipped_when_too_few() -> None:
    prepared, validation = hold_back_validation(Prepared(_pairs(5000)), seed=0)
    assert validation is not None and len(validation.qrels) == 200
    few = Prepared(_pairs(5 * MIN_VALIDATION_QUERIES - 10))
    assert hold_back_validation(few, seed=0) == (few, None)


def test_hold_back_groups_pseudo_queries_by_passage() -> None:
    corpus = synthetic_corpus(400)
    pairs = make_pseudo_queries(corpus, strategy="title", max_pairs=400, seed=0)
    prepared, validation = hold_back_validation(Prepared(pairs), seed=0)
    assert validation is not None
    held = {d for docs in validation.qrels.values() for d in docs}
    assert held.isdisjoint({p.positive_id for p in prepared.train})


@pytest.fixture(scope="module")
def retriever(tiny_encoder):
    from simcse_rag.index.hybrid import HybridRetriever

    return HybridRetriever.from_passages(synthetic_corpus(40), tiny_encoder, config=HybridConfig())


def _queries(n: int) -> QuerySet:
    return QuerySet(
        {f"v{i}": f"{TOPICS[i % 8]} answer {i}" for i in range(n)},
        {f"v{i}": {f"d{i}": 1} for i in range(n)},
        "validation",
    )


def test_choose_fusion_keeps_the_best_validation_setting(retriever, tmp_path: Path) -> None:
    choice = choose_fusion(retriever, _queries(30), _queries(10))
    assert choice.validation_queries == 30
    assert len(choice.scores) >= 8  # the library default plus methods x dense weights
    best = max(choice.scores.values())
    # the best on validation, or the library default when the best is not ahead beyond noise
    assert choice.label() in {choice.default} | {k for k, v in choice.scores.items() if v == best}
    assert set(choice.evaluation) == {"chosen", "default"}
    path = choice.save(tmp_path)
    assert path is not None
    assert read_model_fusion(tmp_path)["fusion"] == choice.fusion
    report = json.loads(json.dumps(choice.to_report()))
    assert report["chosen"] == choice.label()
    text = "\n".join(report_lines(report))
    assert "simcse_rag.json" in text and choice.label() in text


def test_a_setting_must_beat_the_default_beyond_noise() -> None:
    from simcse_rag.adapt_fusion import beats_beyond_noise

    base = {f"q{i}": 0.5 for i in range(100)}
    assert beats_beyond_noise({q: 0.6 for q in base}, base)  # every query better
    # ahead on average by one query's luck: within noise
    lucky = {**base, "q0": 1.0}
    assert not beats_beyond_noise(lucky, base)
    mixed = {q: (0.9 if i % 2 else 0.2) for i, q in enumerate(base)}  # mean +0.05, noisy
    assert not beats_beyond_noise(mixed, base)
    assert not beats_beyond_noise(base, base) and not beats_beyond_noise({}, {})


def test_without_validation_the_default_stays_and_nothing_is_saved(
    retriever, tmp_path: Path
) -> None:
    choice = choose_fusion(retriever, None)
    default = HybridConfig()
    assert (choice.fusion, dict(choice.weights)) == (default.fusion, dict(default.weights))
    assert choice.save(tmp_path) is None and read_model_fusion(tmp_path) == {}
    assert "library default" in "\n".join(report_lines(choice.to_report()))


@pytest.mark.slow
def test_adapt_saves_the_chosen_setting_with_the_model(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from simcse_rag.adapt import REPORT_JSON, REPORT_MD, AdaptConfig, adapt
    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.index.hybrid import HybridRetriever
    from simcse_rag.mining import MiningConfig

    corpus = synthetic_corpus(160)
    pairs = [
        TrainingPair(f"q{i}", f"{TOPICS[i % 8]} number {i}", corpus[i].text, corpus[i].id)
        for i in range(160)
    ]
    config = AdaptConfig(
        max_steps=2, batch_size=8, mining=MiningConfig(num_negatives=1, relative_margin=None)
    )
    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    out = tmp_path / "adapted"
    adapt(corpus, encoder, out, config=config, pairs=pairs)
    report = json.loads((out / REPORT_JSON).read_text())
    fusion = report["fusion"]
    held = set(report["held_out"]["query_ids"])
    assert fusion["validation_queries"] == round(0.2 * (160 - len(held)))
    assert report["training"]["pairs"] == 160 - len(held) - fusion["validation_queries"]
    saved = read_model_fusion(out)
    assert (saved["fusion"], saved["weights"]) == (fusion["fusion"], fusion["weights"])
    assert "Fusion setting" in (out / REPORT_MD).read_text()
    reloaded = SimCSEEncoder.from_pretrained(out, device="cpu")
    assert HybridRetriever(reloaded).config.weights == fusion["weights"]
