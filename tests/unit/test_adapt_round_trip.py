"""The round-trip filter through a model trained on the generated pairs (TrainedRoundTrip)."""

from __future__ import annotations

from pathlib import Path

import pytest

import simcse_rag.adapt_round_trip as round_trip_module
from simcse_rag.adapt import AdaptConfig, EvalSet, adapt
from simcse_rag.adapt_retrieval import CorpusIndexer
from simcse_rag.adapt_round_trip import TrainedRoundTrip
from simcse_rag.mining import MiningConfig
from simcse_rag.pairs import TrainingPair
from tests.unit.test_adapt import synthetic_corpus


def _config(**changes: object) -> AdaptConfig:
    settings = {
        "max_steps": 2,
        "batch_size": 4,
        "learning_rate": 1e-2,  # large, so two steps surely move the weights
        "mining": MiningConfig(num_negatives=1, relative_margin=None),
    }
    return AdaptConfig(**{**settings, **changes})


def _candidates(corpus: list) -> list[TrainingPair]:
    """Each passage's title as its "generated question", plus one naming no corpus passage."""
    pairs = [TrainingPair(f"g{i}", p.metadata["title"], p.text, p.id) for i, p in enumerate(corpus)]
    return [*pairs, TrainingPair("x", "an orphan question", "a passage elsewhere", "not-in-corpus")]


@pytest.fixture()
def setting(tiny_encoder):  # noqa: ANN001, ANN201 - fixture
    corpus = synthetic_corpus(16)
    indexer = CorpusIndexer(corpus)
    return corpus, indexer, indexer.index(tiny_encoder)


def test_filter_model_is_trained_then_the_base_weights_come_back(tiny_encoder, setting) -> None:
    corpus, indexer, base = setting
    eval_set = EvalSet({"e": corpus[0].metadata["title"]}, {"e": {"d0": 1}}, "judged")
    before = tiny_encoder.fingerprint()
    stages: list[str] = []
    trip = TrainedRoundTrip(tiny_encoder, indexer, base, _config(), eval_set, stages.append)
    candidates = _candidates(corpus)
    assert [p.query_id for p in trip.training_pairs(candidates)] == [f"g{i}" for i in range(1, 16)]

    kept, counts = trip(candidates)

    assert tiny_encoder.fingerprint() == before
    assert counts["filter_trained_on"] == 15  # not the evaluation question, not the orphan
    assert counts["given"] == 17 and counts["no_passage_id"] == 1
    assert counts["kept"] == len(kept) == 16 - counts["missed"]
    assert {p.positive_id for p in kept} <= {p.id for p in corpus}
    assert stages[0] == "round trip: training a filter model on 15 generated pairs"
    assert any(s.startswith("round trip: round 1: fine-tuning") for s in stages)
    assert trip.seconds > 0


def test_the_weights_come_back_when_the_check_fails(tiny_encoder, setting, monkeypatch) -> None:
    corpus, indexer, base = setting
    before = tiny_encoder.fingerprint()

    def broken(*args: object) -> None:
        raise RuntimeError("search failed")

    monkeypatch.setattr(round_trip_module, "round_trip_filter", broken)
    trip = TrainedRoundTrip(tiny_encoder, indexer, base, _config())
    with pytest.raises(RuntimeError, match="search failed"):
        trip(_candidates(corpus))
    assert tiny_encoder.fingerprint() == before


def test_fewer_candidates_than_a_batch_are_checked_by_the_base_model(tiny_encoder, setting) -> None:
    corpus, indexer, base = setting
    before = tiny_encoder.fingerprint()
    stages: list[str] = []
    trip = TrainedRoundTrip(
        tiny_encoder, indexer, base, _config(batch_size=32), None, stages.append
    )
    kept, counts = trip(_candidates(corpus))
    assert "filter_trained_on" not in counts and not stages
    assert counts["kept"] == len(kept) and counts["given"] == 17
    assert tiny_encoder.fingerprint() == before


@pytest.mark.parametrize(
    ("model", "by"), [("adapted", "a model trained on them"), ("base", "the base model")]
)
def test_adapt_from_generated_pairs_says_which_model_checked_them(
    restored_encoder, tmp_path: Path, model: str, by: str
) -> None:
    corpus = synthetic_corpus(24)
    # Each passage's own text as its "generated question": it retrieves itself first.
    generated = [TrainingPair(f"g{i}", p.text, p.text, p.id) for i, p in enumerate(corpus)]
    eval_set = EvalSet({"e": "fever aspirin"}, {"e": {"d0": 1}}, "judged")
    report = adapt(
        corpus,
        restored_encoder,
        tmp_path / "o",
        config=_config(round_trip_model=model),
        generated=generated,
        eval_set=eval_set,
    ).report
    training = report["training"]
    assert training["question_filters"]["generated"]["given"] == 24
    assert training["question_filters"]["generated"]["kept"] == training["pairs"] > 12
    assert not any("labelled by the base retriever" in w for w in report["warnings"])
    assert training["source"].endswith(f"(top 20, {by})")
    assert report["config"]["round_trip_model"] == model
    trained_on = training["question_filters"]["generated"].get("filter_trained_on")
    assert trained_on == (24 if model == "adapted" else None)
    assert ("round_trip_filter_s" in report["timings"]) == (model == "adapted")


def test_an_unknown_round_trip_model_is_refused() -> None:
    with pytest.raises(ValueError, match="round_trip_model 'trained' unknown.*adapted, base"):
        AdaptConfig(round_trip_model="trained")
