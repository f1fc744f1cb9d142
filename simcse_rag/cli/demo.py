"""``simcse-rag demo``: hybrid search and a short domain adaptation on a sample corpus, offline."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from simcse_rag.cli._common import (
    CORPUS_HELP,
    add_model_argument,
    check_output_folder,
    existing_file,
    load_encoder,
    positive_int,
)
from simcse_rag.cli.table import format_table, truncate

METRICS: tuple[tuple[str, str], ...] = (
    ("ndcg@10", "nDCG@10"),
    ("recall@10", "Recall@10"),
    ("mrr@10", "MRR@10"),
)
RELEVANT_MARK = "✓"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo",
        help="offline tour: hybrid search and domain adaptation on a sample corpus",
        description="Index a corpus (default: the bundled bilingual children's-health FAQ), show "
        "dense vs BM25 vs hybrid hits for a few queries, adapt the model to the corpus with "
        "mined hard negatives, and print retrieval quality before and after. Runs offline on "
        "the bundled all-MiniLM-L6-v2 in a few minutes on a laptop CPU.",
    )
    parser.add_argument(
        "--corpus",
        type=existing_file,
        default=None,
        help=f"your own {CORPUS_HELP} (default: the bundled sample)",
    )
    parser.add_argument(
        "--query",
        action="append",
        default=None,
        metavar="TEXT",
        help="a query to show (repeatable; default: four bundled queries, or pseudo-queries "
        "sampled from --corpus)",
    )
    parser.add_argument("-k", type=positive_int, default=3, help="hits shown per mode (default 3)")
    add_model_argument(parser)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="use a tiny random model built locally (seconds; for tests, numbers are meaningless)",
    )
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        help="fine-tuning steps (default 40; --tiny 2)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="pairs per step (default 16; --tiny 8)",
    )
    parser.add_argument("--no-adapt", action="store_true", help="skip the domain adaptation")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="keep the adapted model and its report in this folder (default: a temporary "
        "folder, removed when the demo ends)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its tables."""
    from simcse_rag.demo import DemoConfig, run_demo

    started = time.perf_counter()
    max_steps = args.max_steps or (2 if args.tiny else DemoConfig.max_steps)
    batch_size = args.batch_size or (8 if args.tiny else DemoConfig.batch_size)
    if batch_size < 2:
        raise ValueError(f"--batch-size must be at least 2, got {batch_size}.")
    config = DemoConfig(
        corpus=args.corpus,
        queries=tuple(args.query or ()),
        k=args.k,
        adapt=not args.no_adapt,
        max_steps=max_steps,
        batch_size=batch_size,
        seed=args.seed,
    )
    if config.adapt and args.out is not None:
        check_output_folder(args.out, overwrite=args.overwrite)  # fail before any slow work
    show = _Printer(tiny=args.tiny, width=_width(), bars=not args.no_progress)
    # Without --out the adapted model is a throwaway: it lives in this scratch folder, which is
    # removed on every exit (success, error, Ctrl-C, SIGTERM), so runs do not pile up models.
    with tempfile.TemporaryDirectory(prefix="simcse-rag-demo-") as scratch:
        out = args.out
        if out is None and config.adapt:
            out = Path(scratch) / "adapted-model"
        loading = "the model" + (" (tiny random BERT)" if args.tiny else "")
        t0 = time.perf_counter()
        show.started(f"loading {loading}")
        encoder = load_encoder(args, tiny_dir=Path(scratch) / "tiny-bert")
        show.ended(f"loaded {loading}", time.perf_counter() - t0)
        result = run_demo(
            encoder,
            out,
            config,
            overwrite=args.overwrite,
            show_progress=not args.no_progress,
            on_event=show,
        )
    tail = _tail(result, width=show.width, kept=args.out is not None)
    if tail:
        print("\n".join(tail))
    print(f"\nfinished in {time.perf_counter() - started:.0f} s")
    return 0


class _Printer:
    """Shows the demo while it runs, one :class:`~simcse_rag.demo.DemoEvent` at a time.

    Each stdout section is printed (and flushed) as soon as its stage ends, so the hits and the
    base model's numbers are on screen during the slow adaptation. On stderr: with progress bars,
    a line as each stage starts; without (``--no-progress``, logs), one line as each stage and
    each adaptation step ends, with its time.
    """

    def __init__(self, *, tiny: bool, width: int, bars: bool) -> None:
        self.tiny, self.width, self.bars = tiny, width, bars
        self._step: tuple[str, float] | None = None

    def started(self, message: str) -> None:
        """A stage outside :func:`~simcse_rag.demo.run_demo` starts."""
        if self.bars:
            _say(message)

    def ended(self, message: str, seconds: float) -> None:
        """A stage (outside or inside :func:`~simcse_rag.demo.run_demo`) ended."""
        if not self.bars:
            self._end_step()
            _say(f"{message} ({seconds:.1f} s)")

    def __call__(self, event) -> None:  # noqa: ANN001 - DemoEvent; the demo module stays lazy
        if not event.done:
            if event.stage == "adapt" and not self.bars:
                self._end_step()
                self._step = (event.message, time.perf_counter())
            else:
                self.started(event.message)
            return
        self.ended(event.message, event.seconds)
        sections = {
            "load": lambda r: [_header(r, self.tiny), ""],
            "search": lambda r: _hits_section(r, self.width),
            "evaluate": _before_section,
            "adapt": _comparison_section,
        }
        if event.stage in sections:
            print("\n".join(sections[event.stage](event.result)), flush=True)

    def _end_step(self) -> None:
        if self._step is not None:
            message, t0 = self._step
            _say(f"  {message} ({time.perf_counter() - t0:.1f} s)")
            self._step = None


def _say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def _width() -> int:
    return max(80, min(shutil.get_terminal_size((120, 24)).columns, 160))


# --------------------------------------------------------------------------- rendering
def render(  # noqa: ANN001 - DemoResult
    result, *, tiny: bool = False, width: int = 120, kept: bool = True
) -> str:
    """Format a :class:`~simcse_rag.demo.DemoResult` as plain-text tables.

    The ``simcse-rag demo`` command prints the same sections one by one as the demo runs (plus
    the base model's numbers before the adaptation starts).

    Args:
        result: What :func:`~simcse_rag.demo.run_demo` returned.
        tiny: The model is the tiny random one (the header says the numbers mean nothing).
        width: Terminal columns.
        kept: The adapted model stays where ``result.adapted_model`` says; false: it was in a
            temporary folder that is gone, and the text says how to keep it.
    """
    lines = [_header(result, tiny), ""]
    lines += _hits_section(result, width)
    if result.after:
        lines += _comparison_section(result)
    elif result.before:
        lines += _before_section(result)
    lines += _tail(result, width=width, kept=kept)
    return "\n".join(lines)


def _tail(result, *, width: int, kept: bool) -> list[str]:  # noqa: ANN001
    """Notes and where the adapted model is."""
    lines = []
    notes = list(result.notes)
    if result.languages.get("zh") and _is_default_model(result.model):
        notes.append(
            "all-MiniLM-L6-v2 is an English model: Chinese and cross-language matches come "
            "mostly from BM25 (jieba words); for Chinese corpora try --model "
            "shibing624/text2vec-base-chinese (see cookbook/06_chinese_medical_search.py)"
        )
    for note in notes:
        lines.append(
            textwrap.fill(f"note: {note}", width=min(width, 100), subsequent_indent="      ")
        )
    if result.adapted_model is not None and kept:
        lines += [
            "",
            f"adapted model: {result.adapted_model}",
            f"  report:      {Path(result.adapted_model) / 'report.md'}",
            f"  use it:      simcse-rag index build --model {result.adapted_model} "
            "--corpus CORPUS --out INDEX",
        ]
    elif result.adapted_model is not None:
        lines += ["", "adapted model: not kept (rerun with --out DIR to keep it and its report)"]
    return lines


def _header(result, tiny: bool) -> str:  # noqa: ANN001
    langs = ", ".join(f"{n} {lang}" for lang, n in sorted(result.languages.items()))
    size = f"{result.passages} passages" + (f" ({langs})" if langs else "")
    lines = [
        f"corpus: {result.corpus_name}: {size}",
        f"model:  {_model_name(result.model)}"
        + ("  [--tiny: random weights, the numbers mean nothing]" if tiny else ""),
    ]
    return "\n".join(lines)


def _is_default_model(name: str) -> bool:
    from simcse_rag.model_source import default_model_path, resolve_model_path

    try:
        default = default_model_path().resolve()
        return Path(resolve_model_path(name)).resolve() == default if name else False
    except (ImportError, ValueError, OSError):  # the 'model' extra is not installed
        return False


def _model_name(name: str) -> str:
    if _is_default_model(name):
        return "all-MiniLM-L6-v2 (bundled, English)"
    return name or "?"


def _hits_section(result, width: int) -> list[str]:  # noqa: ANN001
    kinds = {q.kind for q in result.queries}
    meaning = {
        "judged": "judged relevant",
        "pseudo": "the passage the pseudo-query was taken from",
    }
    legend = "; ".join(meaning[k] for k in ("judged", "pseudo") if k in kinds)
    lines = [
        f"Top-{_k(result)} hits per mode" + (f" ({RELEVANT_MARK} = {legend})" if legend else ""),
        "",
    ]
    if "pseudo" in kinds:
        lines[0] += "\n(queries sampled from your corpus: a title or sentence of a passage)"
    col = max(20, (width - 4 - 3 * 2) // 3)  # rank column + three mode columns, 2-space gaps
    for n, q in enumerate(result.queries, 1):
        label = f"[{n}] {' '.join(q.query.split())}" + (f"   ({q.query_id})" if q.query_id else "")
        lines.append(truncate(label, width))
        if q.relevant:
            lines.append(truncate("    relevant: " + ", ".join(sorted(q.relevant)), width))
        rows = [["rank", "dense", "bm25", "hybrid"]]
        depth = max(len(h) for h in q.hits.values()) if q.hits else 0
        for r in range(depth):
            row = [f"  {r + 1}"]
            for mode in ("dense", "bm25", "hybrid"):
                hits = q.hits.get(mode, [])
                row.append(_hit_cell(hits[r], q.relevant, col) if r < len(hits) else "-")
            rows.append(row)
        lines += format_table(rows, widths=[4, col, col, col])
        lines.append("")
    return lines


def _k(result) -> int:  # noqa: ANN001
    return max((len(h) for q in result.queries for h in q.hits.values()), default=0)


def _hit_cell(hit, relevant: frozenset[str], width: int) -> str:  # noqa: ANN001
    mark = RELEVANT_MARK if hit.id in relevant else " "
    first_line = " ".join(hit.text.strip().split("\n", 1)[0].split())
    return truncate(f"{mark} {hit.id}  {first_line}", width)


def _before_section(result) -> list[str]:  # noqa: ANN001
    """The base model's metrics."""
    rows = [["mode", *[label for _, label in METRICS]]]
    for mode, row in result.before.items():
        rows.append([mode, *[f"{100 * row.get(m, 0.0):.1f}" for m, _ in METRICS]])
    return [
        f"Retrieval quality on {result.evaluation_source}",
        "",
        *format_table(rows, align="<>>>"),
        "",
    ]


def _comparison_section(result) -> list[str]:  # noqa: ANN001
    """What the adaptation trained on, and the metrics before and after it."""
    report = result.adaptation or {}
    training = report.get("training", {})
    steps = sum(r["train"]["steps"] for r in report.get("rounds", []))
    fair = (
        [
            "The model trained only on pseudo-queries made from the corpus text, never on the",
            "evaluation queries, so this before/after comparison is fair.",
        ]
        if str(training.get("source", "")).startswith("pseudo-queries")
        else [
            "The model trained on example questions written apart from the evaluation queries",
            "(no overlap), so this before/after comparison is fair.",
        ]
    )
    lines = [
        f"Domain adaptation: {training.get('pairs', '?')} training pairs from "
        f"{training.get('source', '?')}, {steps} steps, "
        f"{report.get('timings', {}).get('total_s', 0):.0f} s",
        f"Retrieval quality on {result.evaluation_source}",
        *fair,
        "",
    ]
    rows = [["mode", *[f"{label} before → after" for _, label in METRICS]]]
    for mode, row in result.before.items():
        cells = []
        for m, _ in METRICS:
            b, a = 100 * row.get(m, 0.0), 100 * result.after.get(mode, {}).get(m, 0.0)
            cells.append(f"{b:5.1f} → {a:5.1f} ({a - b:+5.1f})")
        rows.append([mode, *cells])
    lines += format_table(rows, align="<>>>")
    lines += [
        "",
        "(points, x100; BM25 does not use the model, so its row must not change)",
    ]
    return lines
