"""``simcse-rag eval sts``: Spearman / Pearson of cosine similarity on an STS file."""

from __future__ import annotations

import argparse
import json

from simcse_rag.cli._common import add_model_argument, existing_file, load_encoder, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register ``eval sts``."""
    parser = subparsers.add_parser(
        "sts",
        help="STS Spearman/Pearson (0-1 scale) of cosine similarity",
        description="Correlate cosine similarities with gold scores on a TSV with header "
        "sentence1, sentence2, score (or label). Also reports alignment and uniformity.",
    )
    add_model_argument(parser)
    parser.add_argument("--data", required=True, type=existing_file, help="STS TSV file")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the metrics."""
    from simcse_rag.evaluation.sts import evaluate_sts, read_sts

    pairs = read_sts(args.data)
    encoder = load_encoder(args)
    metrics = evaluate_sts(
        encoder,
        pairs,
        batch_size=args.batch_size,
        show_progress=not (args.no_progress or args.json),
    )
    if args.json:
        print(json.dumps({"model": encoder.name_or_path, "data": str(args.data), **metrics}))
        return 0
    for key in ("spearman", "pearson", "pairs", "alignment", "uniformity"):
        value = metrics[key]
        print(f"{key}\t{value:.4f}" if isinstance(value, float) else f"{key}\t{value}")
    return 0
