"""The adaptation report: the Markdown file, its chart link, the terminal rows, the advice."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from simcse_rag.adapt_report import mode_advice, summary_rows, write_chart, write_markdown


def _metrics(ndcg: float) -> dict[str, float]:
    return {"ndcg@10": ndcg, "recall@10": 0.5, "recall@100": 0.9, "mrr@10": 0.4, "queries": 48}


def _report(dense_after: float, hybrid_after: float) -> dict[str, Any]:
    before = {"dense": _metrics(0.40), "bm25": _metrics(0.45), "hybrid": _metrics(0.50)}
    after = {
        "dense": _metrics(dense_after),
        "bm25": _metrics(0.45),
        "hybrid": _metrics(hybrid_after),
    }
    mining = {"pairs": 10, "candidates": 100, "removed": {"positive": 1}, "negatives_kept": 9}
    return {
        "base_model": "m",
        "corpus": {"passages": 100},
        "training": {"pairs": 10, "source": "s"},
        "held_out": {"queries": 48, "source": "e"},
        "rounds": [{"mining": mining}],
        "config": {"max_steps": 5},
        "timings": {"total_s": 1.0},
        "before": before,
        "after": after,
        "warnings": [],
    }


def test_advice_names_dense_mode_only_when_dense_beats_hybrid() -> None:
    advice = mode_advice(_report(0.62, 0.58)["after"])
    assert advice is not None
    assert "dense retrieval alone beats hybrid" in advice and "62.0 against 58.0" in advice
    assert "`--mode dense`" in advice and 'mode="dense"' in advice
    assert mode_advice(_report(0.58, 0.58)["after"]) is None
    assert mode_advice(_report(0.50, 0.58)["after"]) is None


def test_markdown_embeds_chart_and_advice(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = _report(0.62, 0.58)
    chart = write_chart(report, tmp_path / "report.png")
    assert chart is not None and chart.is_file()
    text = write_markdown(report, tmp_path / "report.md", chart="report.png").read_text("utf-8")
    assert "](report.png)" in text  # relative, so the folder can move
    assert mode_advice(report["after"]) in text
    assert "| hybrid |" in text  # the full Markdown table stays in the file
    plain = write_markdown(_report(0.50, 0.58), tmp_path / "plain.md").read_text("utf-8")
    assert "![" not in plain and "dense retrieval alone" not in plain


def test_summary_rows_in_points() -> None:
    report = _report(0.62, 0.58)
    names, rows = summary_rows(report["before"], report["after"])
    assert names == ["nDCG@10", "recall@100", "MRR@10"]
    assert rows[0] == ["mode", *["before", "after", "delta"] * 3]
    assert [r[0] for r in rows[1:]] == ["dense", "bm25", "hybrid"]
    assert rows[1][1:4] == ["40.00", "62.00", "+22.00"]


def test_pseudo_query_warning_gives_the_fix_not_scores() -> None:
    from simcse_rag.adapt_report import adaptation_warnings

    before = _report(0.40, 0.50)["before"]
    (warning,) = adaptation_warnings(before, before, pseudo_eval=True)
    assert "--eval-data" in warning
    assert not re.search(r"\d", warning), warning  # measurements live in docs/benchmarks.md


def test_markdown_says_what_became_of_the_questions_and_the_label_precision(
    tmp_path: Path,
) -> None:
    report = _report(0.45, 0.55)
    report["training"]["question_filters"] = {
        "queries": {"given": 10, "blank": 1, "duplicates": 2, "untrusted": 3, "kept": 4},
        "generated": {"given": 6, "no_passage_id": 0, "missed": 2, "kept": 4},
    }
    report["training"]["label_precision"] = {"judged": 4, "correct": 3, "precision": 0.75}
    text = write_markdown(report, tmp_path / "r.md").read_text(encoding="utf-8")
    assert (
        "- queries: given 10, blank (dropped) 1, repeats (dropped) 2, label not trusted by the "
        "rule (dropped) 3, kept 4" in text
    )
    assert (
        "- generated: given 6, no corpus passage to check (dropped) 0, own passage not in "
        "the top k (dropped) 2, kept 4" in text
    )
    assert "- label precision: 3 of the 4 kept questions" in text and "(75%)" in text


def test_silver_evaluation_warns_that_labels_favour_the_base() -> None:
    from simcse_rag.adapt_report import adaptation_warnings

    before = {"dense": _metrics(0.4), "hybrid": _metrics(0.5)}
    after = {"dense": _metrics(0.5), "hybrid": _metrics(0.6)}
    assert adaptation_warnings(before, after, pseudo_eval=False) == []
    (warning,) = adaptation_warnings(before, after, pseudo_eval=False, silver_eval=True)
    assert "labelled by the base retriever" in warning and "--eval-data" in warning
