"""Questions without labels: labelling by the base retriever, the round-trip filter, adapt()."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from simcse_rag.adapt import (
    QUESTIONS_MERGE_WEIGHT,
    REPORT_JSON,
    REPORT_MD,
    AdaptConfig,
    EvalSet,
    adapt,
)
from simcse_rag.adapt_merge import base_weights, restore_weights
from simcse_rag.adapt_questions import (
    DEFAULT_LABEL_RULE,
    LabelRule,
    describe_rule,
    label_precision,
    label_queries,
    question_id,
    relative_margin,
    round_trip_filter,
)
from simcse_rag.mining import MiningConfig
from simcse_rag.pairs import TrainingPair
from simcse_rag.schema import Hit, Passage, SourceHit
from tests.unit.test_adapt import synthetic_corpus


class FakeRetriever:
    """Answers each query with hits scripted per query text: ``[(id, score, dense, bm25)]``."""

    def __init__(self, script: dict[str, list[tuple[str, float, int | None, int | None]]]):
        self.script = script
        self.searched: list[str] = []
        self.docs = {d: Passage(d, f"text of {d}") for hits in script.values() for d, *_ in hits}

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.docs

    def get(self, doc_id: str) -> Passage:
        return self.docs[doc_id]

    def search_batch(self, queries, *, k, mode):  # noqa: ANN001, ANN201 - test double
        assert mode == "hybrid"
        self.searched += list(queries)
        out = []
        for q in queries:
            hits = []
            for rank, (d, score, dense, bm25) in enumerate(self.script.get(q, [])[:k], 1):
                sources = {}
                if dense is not None:
                    sources["dense"] = SourceHit(dense, 0.5)
                if bm25 is not None:
                    sources["bm25"] = SourceHit(bm25, 3.0)
                hits.append(Hit(d, score, rank, sources=sources))
            out.append(hits)
        return out


SCRIPT = {
    "agree": [("d1", 0.033, 1, 1), ("d2", 0.016, 2, None)],
    "close": [("d3", 0.032, 1, 2), ("d4", 0.031, 2, 1)],
    "dense only": [("d5", 0.016, 1, None), ("d6", 0.015, 2, None)],
    "nothing": [],
}


def test_agreement_rule_keeps_only_questions_both_legs_rank_first() -> None:
    retriever = FakeRetriever(SCRIPT)
    pairs, counts = label_queries(retriever, list(SCRIPT), LabelRule(max_leg_rank=1))
    assert [(p.query, p.positive_id) for p in pairs] == [("agree", "d1")]
    assert pairs[0].positive == "text of d1"
    assert pairs[0].query_id == question_id("agree")
    assert counts == {"given": 4, "blank": 0, "duplicates": 0, "untrusted": 3, "kept": 1}


def test_wider_leg_rank_and_margin_rules() -> None:
    retriever = FakeRetriever(SCRIPT)
    pairs, _ = label_queries(retriever, list(SCRIPT), LabelRule(max_leg_rank=2))
    assert [p.positive_id for p in pairs] == ["d1", "d3"]
    # No leg check: every question with a hit is kept; a margin drops the close call.
    pairs, counts = label_queries(retriever, list(SCRIPT), LabelRule(None, min_margin=0.2))
    assert [p.positive_id for p in pairs] == ["d1"]
    assert counts["untrusted"] == 3
    pairs, _ = label_queries(retriever, list(SCRIPT), LabelRule(None))
    assert [p.positive_id for p in pairs] == ["d1", "d3", "d5"]


def test_one_leg_limits_check_only_that_leg() -> None:
    retriever = FakeRetriever(SCRIPT)
    bm25_first = LabelRule(max_leg_rank=None, max_bm25_rank=1)
    pairs, counts = label_queries(retriever, list(SCRIPT), bm25_first)
    # "close": BM25 ranks its top passage 2nd; "dense only": BM25 never found it.
    assert [p.positive_id for p in pairs] == ["d1"]
    assert counts["untrusted"] == 3
    dense_first = LabelRule(max_leg_rank=None, max_dense_rank=1)
    pairs, _ = label_queries(retriever, list(SCRIPT), dense_first)
    assert [p.positive_id for p in pairs] == ["d1", "d3", "d5"]
    # A leg's own limit overrides the shared one for that leg only.
    pairs, _ = label_queries(retriever, list(SCRIPT), LabelRule(max_leg_rank=1, max_bm25_rank=2))
    assert [p.positive_id for p in pairs] == ["d1", "d3"]
    assert bm25_first.leg_limits() == {"bm25": 1}
    assert LabelRule(max_leg_rank=3, max_dense_rank=1).leg_limits() == {"dense": 1, "bm25": 3}


def test_the_default_rule_wants_bm25_first_and_dense_within_its_top_10() -> None:
    script = {
        "dense 10th": [("d1", 0.03, 10, 1)],
        "dense 11th": [("d2", 0.03, 11, 1)],
        "dense missed": [("d3", 0.03, None, 1)],
        "bm25 2nd": [("d4", 0.03, 1, 2)],
    }
    pairs, counts = label_queries(FakeRetriever(script), list(script), DEFAULT_LABEL_RULE)
    assert [p.positive_id for p in pairs] == ["d1"] and counts["untrusted"] == 3
    assert AdaptConfig().label_rule == DEFAULT_LABEL_RULE
    assert describe_rule(DEFAULT_LABEL_RULE) == (
        "kept when the top passage is in dense's top 10 and the top passage is BM25's top passage"
    )


def test_blank_lines_and_repeats_are_dropped_counted_and_searched_once() -> None:
    retriever = FakeRetriever(SCRIPT)
    given = ["agree", "  ", "Agree ", "agree", "", "close"]
    pairs, counts = label_queries(retriever, given, LabelRule(max_leg_rank=2))
    assert counts == {"given": 6, "blank": 2, "duplicates": 2, "untrusted": 0, "kept": 2}
    assert retriever.searched == ["agree", "close"]
    assert len({p.query_id for p in pairs}) == 2


def test_question_ids_are_stable_and_ignore_case_and_spaces() -> None:
    assert question_id("What is  X?") == question_id("what is x?")
    assert question_id("what is x?") != question_id("what is y?")


def test_relative_margin() -> None:
    hits = [Hit("a", 0.04, 1), Hit("b", 0.03, 2)]
    assert relative_margin(hits) == pytest.approx(0.25)
    assert relative_margin(hits[:1]) == 1.0
    assert relative_margin([]) == 0.0


def test_round_trip_keeps_pairs_whose_passage_ranks_within_k() -> None:
    retriever = FakeRetriever(SCRIPT)
    candidates = [
        TrainingPair("g1", "close", "text of d4", "d4"),  # rank 2
        TrainingPair("g2", "close", "text of d3", "d3"),  # rank 1
        TrainingPair("g3", "dense only", "text of d1", "d1"),  # not retrieved
        TrainingPair("g4", "agree", "a passage outside the corpus", ""),
    ]
    kept, counts = round_trip_filter(retriever, candidates, k=1)
    assert [p.query_id for p in kept] == ["g2"]
    assert counts == {"given": 4, "no_passage_id": 1, "missed": 2, "kept": 1}
    assert retriever.searched == ["close", "dense only"]  # each question once
    kept, counts = round_trip_filter(retriever, candidates, k=2)
    assert [p.query_id for p in kept] == ["g1", "g2"]
    with pytest.raises(ValueError, match="round-trip k"):
        round_trip_filter(retriever, candidates, k=0)


def test_label_precision_matches_by_id_or_text() -> None:
    eval_set = EvalSet(
        {"e1": "Agree", "e2": "close", "e3": "other"},
        {"e1": {"d1": 1}, "e2": {"d9": 1}, "e3": {"d5": 1}},
        "judged",
    )
    pairs = [
        TrainingPair("x1", "agree", "t", "d1"),  # by text, right
        TrainingPair("x2", "close", "t", "d3"),  # by text, wrong
        TrainingPair("e3", "reworded", "t", "d5"),  # by id, right
        TrainingPair("x4", "unjudged", "t", "d1"),
    ]
    assert label_precision(pairs, eval_set) == {"judged": 3, "correct": 2, "precision": 0.6667}
    assert label_precision(pairs[3:], eval_set) is None


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="max_leg_rank"):
        LabelRule(max_leg_rank=0)
    with pytest.raises(ValueError, match="max_bm25_rank"):
        LabelRule(max_bm25_rank=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_dense_rank"):
        LabelRule(max_dense_rank=-1)
    with pytest.raises(ValueError, match="max_leg_rank"):
        LabelRule(max_leg_rank=1.5)  # type: ignore[arg-type]
    numpy_rank = LabelRule(max_leg_rank=np.int64(2))  # type: ignore[arg-type]
    assert numpy_rank.max_leg_rank == 2 and type(numpy_rank.max_leg_rank) is int
    with pytest.raises(ValueError, match="min_margin"):
        LabelRule(min_margin=1.5)
    with pytest.raises(ValueError, match="round_trip_k"):
        AdaptConfig(round_trip_k=0)
    with pytest.raises(TypeError, match="label_rule"):
        AdaptConfig(label_rule={"max_leg_rank": 1})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- adapt()
def _config() -> AdaptConfig:
    return AdaptConfig(
        max_steps=2,
        batch_size=4,
        mining=MiningConfig(num_negatives=1, relative_margin=None),
        # The tiny random model's dense ranking is noise: trust every top passage here.
        label_rule=LabelRule(max_leg_rank=None),
    )


def _questions(corpus: list[Passage]) -> list[str]:
    return [p.text.split("\n")[1] for p in corpus] + ["", "   "]


def test_adapt_from_queries_end_to_end(restored_encoder, tmp_path: Path) -> None:
    corpus = synthetic_corpus(24)
    adapt(corpus, restored_encoder, tmp_path / "o", config=_config(), queries=_questions(corpus))
    report = json.loads((tmp_path / "o" / REPORT_JSON).read_text(encoding="utf-8"))
    filters = report["training"]["question_filters"]["queries"]
    assert filters == {"given": 26, "blank": 2, "duplicates": 0, "untrusted": 0, "kept": 24}
    assert report["training"]["source"].startswith("questions labelled by the base retriever")
    # No --eval-data: 30% of the kept questions are held back, labelled by the base retriever.
    assert report["held_out"]["queries"] == 7 and report["training"]["pairs"] == 17
    assert any("labelled by the base retriever" in w for w in report["warnings"])
    assert report["training"]["label_precision"] is None
    assert report["timings"]["label_questions_s"] >= 0
    md = (tmp_path / "o" / REPORT_MD).read_text(encoding="utf-8")
    assert "- queries: given 26, blank (dropped) 2" in md and "kept 24" in md


def test_adapt_refuses_pairs_and_queries_together(tiny_encoder, tmp_path: Path) -> None:
    corpus = synthetic_corpus(20)
    pairs = [TrainingPair("q", "fever", corpus[0].text, "d0")]
    with pytest.raises(ValueError, match="not both"):
        adapt(corpus, tiny_encoder, tmp_path / "o", pairs=pairs, queries=["fever"])
    assert not (tmp_path / "o").exists()


def test_adapt_with_no_question_kept_is_a_clear_error(tiny_encoder, tmp_path: Path) -> None:
    corpus = synthetic_corpus(20)
    with pytest.raises(ValueError, match="No question was kept"):
        adapt(corpus, tiny_encoder, tmp_path / "o", config=_config(), queries=["", "  "])
    assert not (tmp_path / "o").exists()


def test_fewer_kept_questions_than_one_batch_are_refused() -> None:
    from simcse_rag.adapt_questions import pairs_from_questions

    kwargs = {"generated": None, "rule": LabelRule(max_leg_rank=2), "round_trip_k": 1}
    with pytest.raises(ValueError, match=r"Only 2 pairs were kept \(queries: given 4.*at least 3"):
        pairs_from_questions(FakeRetriever(SCRIPT), queries=list(SCRIPT), min_pairs=3, **kwargs)
    made = pairs_from_questions(FakeRetriever(SCRIPT), queries=list(SCRIPT), min_pairs=2, **kwargs)
    assert len(made.pairs) == 2


def test_pairs_from_a_mapping_keep_the_first_id_of_each_question() -> None:
    from simcse_rag.adapt_questions import pairs_from_questions

    retriever = FakeRetriever(SCRIPT)
    made = pairs_from_questions(
        retriever,
        queries={"a1": "agree", "a2": "Agree", "c": "close"},
        generated=None,
        rule=LabelRule(max_leg_rank=2),
        round_trip_k=1,
    )
    assert [(p.query_id, p.positive_id) for p in made.pairs] == [("a1", "d1"), ("c", "d3")]
    assert made.filters["queries"]["duplicates"] == 1


def test_read_questions_from_text_lines_and_from_beir_jsonl(tmp_path: Path) -> None:
    from simcse_rag.adapt_questions import read_questions

    lines = tmp_path / "q.txt"
    lines.write_text("\ufefffirst question\n\n  second one  \r\n", encoding="utf-8")
    assert read_questions(lines) == ["first question", "  second one  "]
    beir = tmp_path / "queries.jsonl"
    beir.write_text('{"_id": "q7", "text": "a question"}\n', encoding="utf-8")
    assert read_questions(beir) == {"q7": "a question"}
    with pytest.raises(FileNotFoundError, match="not found"):
        read_questions(tmp_path / "missing.txt")


def test_a_handful_of_kept_questions_trains_for_at_most_max_passes(
    restored_encoder, tmp_path: Path
) -> None:
    corpus = synthetic_corpus(24)
    eval_set = EvalSet({"e": "fever aspirin"}, {"e": {"d0": 1}}, "judged")
    config = AdaptConfig(  # the default 100 steps, of the 4 pairs
        batch_size=4,
        mining=MiningConfig(num_negatives=1, relative_margin=None),
        label_rule=LabelRule(max_leg_rank=None),
    )
    result = adapt(
        corpus,
        restored_encoder,
        tmp_path / "o",
        config=config,
        queries=_questions(corpus)[:4],
        eval_set=eval_set,
    )
    assert result.report["training"]["pairs"] == 4
    assert result.report["rounds"][0]["train"]["steps"] == config.max_passes
    md = (tmp_path / "o" / REPORT_MD).read_text(encoding="utf-8")
    assert f"steps per round: {config.max_passes}" in md


def test_describe_rule_names_each_checked_leg() -> None:
    assert describe_rule(LabelRule()) == "kept when dense and BM25 agree on the top passage"
    assert describe_rule(LabelRule(max_leg_rank=2)).endswith("top 2 of dense and of BM25")
    one_leg = describe_rule(LabelRule(max_leg_rank=None, max_bm25_rank=1))
    assert one_leg == "kept when the top passage is BM25's top passage"
    both = describe_rule(LabelRule(max_leg_rank=None, max_bm25_rank=1, max_dense_rank=3))
    assert "BM25's top passage" in both and "dense's top 3" in both
    assert describe_rule(LabelRule(max_leg_rank=None)) == "every top passage kept"


def test_labelled_questions_are_all_trained_and_never_choose_the_fusion(
    restored_encoder, tmp_path: Path
) -> None:
    # Held-back questions labelled by the base retriever reward the fusion nearest the
    # labelling rule; labelled pairs of the same questions do hold some back to choose it.
    corpus = synthetic_corpus(120)
    questions = {f"q{p.id}": p.text.split("\n")[1] for p in corpus}
    eval_set = EvalSet({"e": "fever aspirin"}, {"e": {"d0": 1}}, "judged")
    untrained = base_weights(restored_encoder)
    from_questions = adapt(
        corpus, restored_encoder, tmp_path / "q", config=_config(), queries=questions,
        eval_set=eval_set,
    )  # fmt: skip
    restore_weights(restored_encoder, untrained)  # both runs start from the same model
    pairs = [
        TrainingPair(q, t, corpus[i].text, corpus[i].id)
        for i, (q, t) in enumerate(questions.items())
    ]
    from_pairs = adapt(
        corpus, restored_encoder, tmp_path / "p", config=_config(), pairs=pairs, eval_set=eval_set
    )
    kept = from_questions.report["training"]["question_filters"]["queries"]["kept"]
    assert kept >= 100
    assert from_questions.report["training"]["pairs"] == kept
    fusion = from_questions.report["fusion"]
    assert (
        fusion["validation_queries"] == 0
        and "labelled by the base retriever" in (fusion["kept_default"])
    )
    md = (tmp_path / "q" / REPORT_MD).read_text(encoding="utf-8")
    assert "labelled by the base retriever itself, so none is held back" in md
    assert from_pairs.report["fusion"]["validation_queries"] >= 20
    assert from_pairs.report["training"]["pairs"] == len(pairs) - 24
    # Guessed labels keep half the base model; labelled pairs keep the fine-tuned one.
    assert from_questions.report["training"]["merge_weight"] == QUESTIONS_MERGE_WEIGHT == 0.5
    assert from_pairs.report["training"]["merge_weight"] == 1.0


def test_a_merge_weight_the_user_sets_wins_over_the_questions_default(
    restored_encoder, tmp_path: Path
) -> None:
    corpus = synthetic_corpus(120)
    questions = {f"q{p.id}": p.text.split("\n")[1] for p in corpus}
    config = dataclasses.replace(_config(), merge_weight=0.8)
    result = adapt(corpus, restored_encoder, tmp_path / "q", config=config, queries=questions)
    assert result.report["training"]["merge_weight"] == 0.8
