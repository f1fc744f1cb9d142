"""``simcse-rag adapt``: fine-tune a model on a corpus with mined hard negatives, report gains."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simcse_rag.cli._common import (
    CORPUS_HELP,
    add_model_argument,
    check_output_folder,
    existing_file,
    load_encoder,
    positive_float,
    positive_int,
)
from simcse_rag.cli.generator_args import (
    add_generator_arguments,
    generation_config_from_args,
    generator_from_args,
)
from simcse_rag.pseudo_queries import STRATEGIES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``adapt`` command."""
    parser = subparsers.add_parser(
        "adapt",
        help="adapt a model to a corpus (mine hard negatives, fine-tune, before/after report)",
        description="Adapt an embedding model to a corpus: training pairs (labelled, questions "
        "without labels that the base retriever labels, questions an LLM writes, or "
        "pseudo-queries made from the corpus), hard negatives mined with the model + BM25 with "
        "false-negative filtering, supervised SimCSE fine-tuning, and dense/bm25/hybrid metrics "
        "before and after on held-out queries. Writes a model folder (loadable by every "
        "command and SentenceTransformer) with report.json, report.md and mined.jsonl.",
    )
    add_model_argument(parser)
    parser.add_argument("--corpus", required=True, type=existing_file, help=CORPUS_HELP)
    parser.add_argument("--out", required=True, type=Path, help="output model folder")
    pairs = parser.add_mutually_exclusive_group()
    pairs.add_argument("--train-data", type=Path, help="BEIR folder with labelled training qrels")
    pairs.add_argument("--pairs", type=existing_file, help="TSV: query<TAB>positive passage")
    pairs.add_argument(
        "--queries",
        type=existing_file,
        help="questions without labels (e.g. your chatbot's logs): .txt one per line, or a BEIR "
        "queries.jsonl; the base retriever labels them and only trusted labels are kept",
    )
    parser.add_argument("--train-split", default="train", help="qrels split of --train-data")
    parser.add_argument("--eval-data", type=Path, help="BEIR folder with evaluation qrels")
    parser.add_argument("--eval-split", default="test", help="qrels split of --eval-data")
    parser.add_argument(
        "--strategy",
        default="auto",
        choices=STRATEGIES,
        help="pseudo-queries to train on when no labelled pairs are given; the default (auto) "
        "refuses corpus-only adaptation: choose a strategy and check the result on real "
        "queries with --eval-data",
    )
    parser.add_argument("--max-steps", type=positive_int, default=None, help="steps per round")
    parser.add_argument("--rounds", type=positive_int, default=1, help="mine + train rounds")
    parser.add_argument("--batch-size", type=positive_int, default=None)
    parser.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="peak learning rate (default: 1e-4 with labelled pairs or --queries, 5e-5 for "
        "corpus-only --strategy runs)",
    )
    parser.add_argument("--max-pairs", type=positive_int, default=None)
    parser.add_argument("--num-negatives", type=positive_int, default=None)
    parser.add_argument(
        "--encode-max-length",
        type=positive_int,
        default=None,
        help="token limit when encoding the corpus for mining/evaluation (faster on CPU)",
    )
    parser.add_argument(
        "--merge-weight",
        type=_merge_weight,
        default=None,
        help="share of the fine-tuned weights kept, the rest from the base model (default: 0.3 "
        "for corpus-only --strategy runs, 0.5 with --queries, 1 with labelled pairs or generated "
        "questions); try 0.5 when the report warns that a score fell below the base model's",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="keep corpus embeddings per model here; a re-run skips re-encoding the base model",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_generator_arguments(parser)
    parser.set_defaults(func=run)


def _merge_weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}")
    return value


def _config(args: argparse.Namespace):  # noqa: ANN202 - keeps torch out of parse time
    import dataclasses

    from simcse_rag.adapt import AdaptConfig

    config = AdaptConfig(strategy=args.strategy, rounds=args.rounds, seed=args.seed)
    changes = {
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "max_pairs": args.max_pairs,
        "encode_max_length": args.encode_max_length,
        "merge_weight": args.merge_weight,
        "round_trip_model": args.round_trip_model,
    }
    config = dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
    if args.num_negatives is not None:
        mining = dataclasses.replace(config.mining, num_negatives=args.num_negatives)
        config = dataclasses.replace(config, mining=mining)
    return config


def _eval_set(args: argparse.Namespace):  # noqa: ANN202
    from simcse_rag.datasets import load_query_set

    # Queries without a relevant passage are never scored; dropping them keeps the report's
    # count of held-out queries true.
    return load_query_set(args.eval_data, args.eval_split).with_relevant()


def run(args: argparse.Namespace) -> int:
    """Run the adaptation and print the before/after table (all metrics in report.md)."""
    from simcse_rag.adapt import adapt
    from simcse_rag.adapt_questions import read_questions
    from simcse_rag.adapt_report import mode_advice
    from simcse_rag.corpus import read_corpus
    from simcse_rag.pairs import pairs_from_beir, pairs_from_tsv

    check_output_folder(args.out, overwrite=args.overwrite)  # fail before any slow work
    generator = generator_from_args(args)  # one short request: a bad URL/model/key fails here
    generation = generation_config_from_args(args) if generator is not None else None
    config = _config(args)
    corpus = read_corpus(args.corpus)
    by_id = {p.id: p for p in corpus}
    pairs, source = None, ""
    queries = read_questions(args.queries) if args.queries is not None else None
    if args.train_data is not None:
        pairs = pairs_from_beir(args.train_data, args.train_split, by_id)
        source = f"{args.train_data} qrels/{args.train_split}"
    elif args.pairs is not None:
        pairs = pairs_from_tsv(args.pairs, by_id)
        source = str(args.pairs)
    eval_set = _eval_set(args) if args.eval_data is not None else None
    encoder = load_encoder(args)

    def stage(message: str) -> None:
        print(f"[adapt] {message}", file=sys.stderr, flush=True)

    result = adapt(
        corpus,
        encoder,
        args.out,
        config=config,
        pairs=pairs,
        pairs_source=source,
        eval_set=eval_set,
        queries=queries,
        generator=generator,
        generation=generation,
        overwrite=args.overwrite,
        cache_dir=args.cache_dir,
        show_progress=not args.no_progress,
        on_stage=stage,
    )
    report = result.report
    print("\n".join(summary_table(report["before"], report["after"])))
    advice = mode_advice(report["after"])
    if advice:
        print(advice)
    print(
        f"adapted model saved to {result.output_dir} (report.md, report.json inside); "
        f"{report['held_out']['queries']} held-out queries, {report['timings']['total_s']:.0f}s"
    )
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def summary_table(before: dict, after: dict) -> list[str]:
    """Lines of an aligned before/after table, each metric's name over its three columns."""
    from simcse_rag.adapt_report import summary_rows
    from simcse_rag.cli.table import display_width, format_table, pad

    names, rows = summary_rows(before, after)
    widths = [max(display_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    groups = [" " * widths[0]]
    for i, name in enumerate(names):
        span = sum(widths[1 + 3 * i : 4 + 3 * i]) + 4  # three columns and the two gaps between
        groups.append(pad(name, span))
    table = format_table(rows, widths=widths, align="<" + ">" * (len(widths) - 1))
    return ["  ".join(groups).rstrip(), *table]
