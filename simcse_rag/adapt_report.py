"""Before/after report of a domain adaptation: its contents and warnings, ``report.json``,
``report.md`` and a PNG chart."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simcse_rag.adapt_config import STRONG_BASE_MERGE_WEIGHT, AdaptConfig
from simcse_rag.adapt_fusion import report_lines as fusion_report_lines

if TYPE_CHECKING:  # annotations only
    from simcse_rag.adapt_pairs import PreparedPairs

logger = logging.getLogger(__name__)

#: Search modes measured before and after, in report order.
MODES = ("dense", "bm25", "hybrid")
#: Metrics shown in the Markdown table, in order.
TABLE_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
#: Metrics of the terminal summary (fits 80 columns), with their display names.
SUMMARY_METRICS = {"ndcg@10": "nDCG@10", "recall@100": "recall@100", "mrr@10": "MRR@10"}


def metric_deltas(
    before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """``after - before`` for every mode and metric present in both."""
    return {
        mode: {
            m: round(float(after[mode][m]) - float(before[mode][m]), 6)
            for m in before[mode]
            if m in after.get(mode, {}) and m != "queries"
        }
        for mode in before
        if mode in after
    }


def adaptation_warnings(
    before: Mapping[str, Mapping[str, float]],
    after: Mapping[str, Mapping[str, float]],
    *,
    pseudo_eval: bool,
    merge_weight: float = 1.0,
    silver_eval: bool = False,
) -> list[str]:
    """What a user must know before trusting or deploying the adapted model.

    Args:
        before: Mode -> metrics of the base model.
        after: Mode -> metrics of the adapted model.
        pseudo_eval: The evaluation queries are held-back pseudo-queries (no labels anywhere).
        merge_weight: The run's merge weight; above
            :data:`~simcse_rag.adapt_config.STRONG_BASE_MERGE_WEIGHT`, a fall comes with the
            advice to merge more of the base back in.
        silver_eval: The evaluation queries are held-back questions whose labels the base
            retriever gave.

    Returns:
        One sentence per warning (empty when there is nothing to say).
    """
    out = []
    if pseudo_eval:
        # Fit to pseudo-queries can hide a loss on real questions (docs/benchmarks.md,
        # "corpus-only"), so the user is sent to real queries.
        out.append(
            "evaluated on held-back pseudo-queries, the same kind of text the model trained on: "
            "the numbers show fit to that task, not gains on real questions; evaluate with real "
            "queries (--eval-data) before deploying"
        )
    if silver_eval:
        # The base model picked these labels, so it scores well on them by construction.
        out.append(
            "evaluated on held-back questions labelled by the base retriever itself: the labels "
            "favour the base model and may be wrong; evaluate with judged questions "
            "(--eval-data) before deploying"
        )
    for mode in ("dense", "hybrid"):
        b = before.get(mode, {}).get("ndcg@10")
        a = after.get(mode, {}).get("ndcg@10")
        if b is not None and a is not None and a < b:
            fix = "keep the base model for this corpus"
            if merge_weight > STRONG_BASE_MERGE_WEIGHT:
                fix = (
                    f"rerun with --merge-weight {STRONG_BASE_MERGE_WEIGHT} to keep more of the "
                    f"base model, or {fix}"
                )
            out.append(
                f"{mode} nDCG@10 fell from {100 * b:.1f} to {100 * a:.1f} on the evaluation "
                f"queries: {fix}"
            )
    return out


def build_report(
    config: AdaptConfig,
    prepared: PreparedPairs,
    rounds: Sequence[Mapping[str, Any]],
    before: Mapping[str, Mapping[str, float]],
    after: Mapping[str, Mapping[str, float]],
    *,
    base_model: str,
    passages: int,
    timings: Mapping[str, float],
) -> dict[str, Any]:
    """The report of a run, as saved in ``report.json`` (stage 4 of
    :func:`simcse_rag.adapt.adapt`).

    Args:
        config: The run's settings.
        prepared: Its training pairs and evaluation queries.
        rounds: The rounds' entries (:class:`~simcse_rag.adapt_rounds.RoundsResult`).
        before: Mode -> metrics of the base model.
        after: Mode -> metrics of the adapted model.
        base_model: Name or path of the base model.
        passages: Corpus size.
        timings: Seconds of each stage (rounded in the report).
    """
    merge_weight = config.merge_weight_for(pseudo=prepared.pseudo)
    eval_set = prepared.eval_set
    questions = prepared.questions
    return {
        "base_model": base_model,
        "corpus": {"passages": passages},
        "training": {
            "source": prepared.source,
            "pairs": len(prepared.train),
            "queries": len({p.query_id for p in prepared.train}),
            "merge_weight": merge_weight,
            "learning_rate": config.learning_rate_for(pseudo=prepared.pseudo),
            "question_filters": questions.filters if questions else {},
            "label_precision": questions.label_precision if questions else None,
        },
        "held_out": {
            "source": eval_set.source,
            "queries": len(eval_set.qrels),
            "query_ids": sorted(eval_set.qrels),
        },
        "config": config.to_dict(),
        "rounds": list(rounds),
        "before": before,
        "after": after,
        "delta": metric_deltas(before, after),
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "warnings": adaptation_warnings(
            before,
            after,
            pseudo_eval=prepared.pseudo_eval,
            merge_weight=merge_weight,
            silver_eval=prepared.silver_eval,
        ),
    }


def write_json(report: Mapping[str, Any], path: Path) -> Path:
    """Write the report as indented JSON."""
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def markdown_table(
    before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]]
) -> str:
    """Markdown table: one row per mode, before / after / delta of each metric (in points)."""
    metrics = [m for m in TABLE_METRICS if any(m in before.get(mode, {}) for mode in MODES)]
    head = "| mode | " + " | ".join(f"{m} before | {m} after | Δ" for m in metrics) + " |"
    rule = "|---|" + "---:|---:|---:|" * len(metrics)
    rows = [head, rule]
    for mode in MODES:
        if mode not in before or mode not in after:
            continue
        cells = []
        for m in metrics:
            b, a = 100 * before[mode][m], 100 * after[mode][m]
            cells.append(f"{b:.2f} | {a:.2f} | {a - b:+.2f}")
        rows.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def summary_rows(
    before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]]
) -> tuple[list[str], list[list[str]]]:
    """The main metrics (:data:`SUMMARY_METRICS`) for a terminal table, in points.

    Returns:
        The metric names shown, and rows (header first) of the mode then ``before``,
        ``after`` and ``delta`` of each metric.
    """
    metrics = [m for m in SUMMARY_METRICS if any(m in v for v in before.values())]
    rows = [["mode", *["before", "after", "delta"] * len(metrics)]]
    for mode in MODES:
        if mode in before and mode in after:
            cells = [mode]
            for m in metrics:
                b, a = 100 * before[mode][m], 100 * after[mode][m]
                cells += [f"{b:.2f}", f"{a:.2f}", f"{a - b:+.2f}"]
            rows.append(cells)
    return [SUMMARY_METRICS[m] for m in metrics], rows


def mode_advice(after: Mapping[str, Mapping[str, float]], metric: str = "ndcg@10") -> str | None:
    """A sentence naming the setting to use when dense alone beats hybrid after adaptation.

    Returns:
        ``None`` when hybrid is at least as good as dense (or either is missing).
    """
    dense = after.get("dense", {}).get(metric)
    hybrid = after.get("hybrid", {}).get(metric)
    if dense is None or hybrid is None or dense <= hybrid:
        return None
    return (
        f"After adaptation dense retrieval alone beats hybrid on the held-out questions "
        f"({metric} {100 * dense:.1f} against {100 * hybrid:.1f}): search this model in dense "
        f"mode, `--mode dense` for `simcse-rag search` and `simcse-rag eval retrieval`, "
        f'`mode="dense"` for `HybridRetriever.search` and the LangChain / LlamaIndex retrievers.'
    )


def _merge_line(weight: float | None) -> list[str]:
    if weight is None or weight >= 1.0:
        return []
    return [f"- saved model: fine-tuned weights merged with the base model's at {weight:g}"]


def _steps(report: Mapping[str, Any]) -> Any:
    steps = [r.get("train", {}).get("steps") for r in report["rounds"]]
    if not steps or None in steps:  # reports written before rounds recorded their steps
        return report["config"]["max_steps"]
    return steps[0] if len(set(steps)) == 1 else ", ".join(map(str, steps))


def _lr_text(learning_rate: float | None) -> str:
    return "" if learning_rate is None else f"; peak learning rate: {learning_rate:g}"


#: What each count of a question route means, in report order.
FILTER_LABELS = {
    "given": "given",
    "blank": "blank (dropped)",
    "duplicates": "repeats (dropped)",
    "untrusted": "label not trusted by the rule (dropped)",
    "no_passage_id": "no corpus passage to check (dropped)",
    "missed": "own passage not in the top k (dropped)",
    "filter_trained_on": "pairs the filter model was trained on",
    "kept": "kept",
    # generation (simcse_rag.adapt_generation)
    "passages": "passages asked about",
    "requests": "requests sent",
    "cached": "replies from the cache",
    "bad_replies": "replies not in the chat format (skipped)",
    "dropped_empty_reply": "empty replies",
    "dropped_unparseable_reply": "unreadable replies",
    "dropped_too_short": "too short (dropped)",
    "dropped_too_long": "too long (dropped)",
    "dropped_copy": "copies of the passage (dropped)",
    "dropped_duplicate": "repeats (dropped)",
    "dropped_extra": "beyond the number asked (dropped)",
    "questions": "questions written",
}


def question_lines(training: Mapping[str, Any]) -> list[str]:
    """Markdown lines: what became of the questions of each route, and the label precision."""
    lines = []
    for route, counts in (training.get("question_filters") or {}).items():
        shown = ", ".join(f"{FILTER_LABELS.get(k, k)} {v}" for k, v in counts.items())
        lines.append(f"- {route}: {shown}")
    precision = training.get("label_precision")
    if precision:
        lines.append(
            f"- label precision: {precision['correct']} of the {precision['judged']} kept "
            f"questions that the evaluation data judges have a relevant label "
            f"({100 * precision['precision']:.0f}%)"
        )
    return lines


def write_markdown(report: Mapping[str, Any], path: Path, *, chart: str | None = None) -> Path:
    """Write a human summary: data used, what was held out, mining counts, the table.

    Args:
        report: The report (as in ``report.json``).
        path: The Markdown file.
        chart: Path of the chart relative to ``path``'s folder, embedded under the table.
    """
    held = report["held_out"]
    advice = mode_advice(report["after"])
    lines = [
        "# Domain adaptation report",
        "",
        f"- base model: `{report['base_model']}`",
        f"- corpus: {report['corpus']['passages']} passages",
        f"- training pairs: {report['training']['pairs']} from {report['training']['source']}",
        f"- evaluation: {held['queries']} queries from {held['source']} (never trained on)",
        f"- rounds: {len(report['rounds'])}; steps per round: {_steps(report)}"
        + _lr_text(report["training"].get("learning_rate")),
        *_merge_line(report["training"].get("merge_weight")),
        f"- total time: {report['timings']['total_s']:.0f} s",
        *question_lines(report["training"]),
        "",
        *[f"- **warning**: {w}" for w in report.get("warnings", [])],
        "",
        "## Retrieval before and after (points)",
        "",
        markdown_table(report["before"], report["after"]),
        "",
        *([advice, ""] if advice else []),
        *fusion_report_lines(report.get("fusion")),
        *([f"![nDCG@10 before and after adaptation]({chart})", ""] if chart else []),
        "## Mining (candidates removed by each filter)",
        "",
        "| round | pairs | candidates | "
        + " | ".join(report["rounds"][0]["mining"]["removed"])
        + " | kept |",
        "|---:|---:|---:|" + "---:|" * (len(report["rounds"][0]["mining"]["removed"]) + 1),
    ]
    for i, rnd in enumerate(report["rounds"], 1):
        mining = rnd["mining"]
        removed = " | ".join(str(v) for v in mining["removed"].values())
        lines.append(
            f"| {i} | {mining['pairs']} | {mining['candidates']} | {removed} | "
            f"{mining['negatives_kept']} |"
        )
    lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_chart(report: Mapping[str, Any], path: Path, metric: str = "ndcg@10") -> Path | None:
    """Bar chart of ``metric`` before/after per mode; ``None`` when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib not installed: no chart (pip install 'simcse-rag[plot]')")
        return None
    modes = [m for m in MODES if m in report["before"] and m in report["after"]]
    before = [100 * report["before"][m][metric] for m in modes]
    after = [100 * report["after"][m][metric] for m in modes]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    x = range(len(modes))
    ax.bar([i - 0.2 for i in x], before, width=0.4, label="before")
    ax.bar([i + 0.2 for i in x], after, width=0.4, label="after")
    ax.set_xticks(list(x), modes)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} before / after adaptation")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
