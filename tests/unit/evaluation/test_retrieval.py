"""Retrieval metrics and BEIR loading."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from simcse_rag.evaluation.retrieval import (
    evaluate_run,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)


def test_ndcg_hand_computed() -> None:
    judged = {"a": 3, "b": 1, "c": 0}
    dcg = 1 / math.log2(2) * 0 + 3 / math.log2(3) + 1 / math.log2(4)  # ranking x, a, b
    idcg = 3 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(["x", "a", "b"], judged, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["a", "b"], judged, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["b"], judged, 1) == pytest.approx(1 / 3)
    assert ndcg_at_k([], judged, 10) == 0.0


def test_recall_and_mrr() -> None:
    judged = {"a": 1, "b": 2, "c": 0}
    assert recall_at_k(["c", "a", "z"], judged, 2) == pytest.approx(0.5)
    assert recall_at_k(["b", "a"], judged, 100) == 1.0
    assert mrr_at_k(["c", "z", "b"], judged, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["c", "z", "b"], judged, 2) == 0.0


def test_evaluate_run_averages_judged_queries_only() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    run = {"q1": ["a", "a", "x"], "q3": ["c"]}
    m = evaluate_run(run, qrels, ks=(1, 10))
    assert m["queries"] == 2  # q3 has no relevant document
    assert m["recall@1"] == pytest.approx(0.5)  # q2 missing from the run scores 0
    assert m["mrr@10"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="cut-off"):
        evaluate_run(run, qrels, ks=(0,))
    with pytest.raises(ValueError, match="Unknown metric"):
        evaluate_run(run, qrels, metrics=("map",))
    with pytest.raises(ValueError, match="no query with a relevant"):
        evaluate_run(run, {"q": {"a": 0}})


def _write_beir(folder: Path, corpus_lines: list[str]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(corpus_lines) + "\n", encoding="utf-8")
    (folder / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "fever"})
        + "\n"
        + json.dumps({"_id": "q2", "text": "tax"})
        + "\n"
    )
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\n")
    return folder


def test_load_beir(tmp_path: Path) -> None:
    folder = _write_beir(
        tmp_path / "beir",
        [
            json.dumps({"_id": "d1", "title": "Fever", "text": "High temperature."}),
            json.dumps({"_id": "d2", "title": "", "text": "Tax."}),
        ],
    )
    data = load_beir(folder, "test")
    assert [p.id for p in data.corpus] == ["d1", "d2"]
    assert data.corpus[0].text == "Fever\nHigh temperature." and data.corpus[1].text == "Tax."
    assert data.queries == {"q1": "fever"}  # only judged queries
    assert data.qrels == {"q1": {"d1": 2}}
    with pytest.raises(ValueError, match=r"available splits: \['test'\]"):
        load_beir(folder, "dev")


def test_load_beir_names_bad_line(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "beir", [json.dumps({"_id": "d1", "text": "ok"}), "{not json"])
    with pytest.raises(ValueError, match=r"corpus.jsonl:2: malformed JSON"):
        load_beir(folder, "test")


def test_shared_beir_sets_load(shared_data: Path) -> None:
    data = load_beir(shared_data / "tatqa_fin_dev", "dev")
    assert len(data.corpus) == 1634 and len(data.queries) > 1000
    assert all(q in data.queries for q in data.qrels)
