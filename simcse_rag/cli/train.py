"""``simcse-rag train unsup|sup``: SimCSE fine-tuning from a data file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from simcse_rag.cli._common import add_model_argument, existing_file, positive_float, positive_int

_DEFAULT_LR = {"unsup": 3e-5, "sup": 5e-5}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train unsup`` and ``train sup``."""
    parser = subparsers.add_parser("train", help="fine-tune a model with SimCSE")
    sub = parser.add_subparsers(dest="train_command", metavar="MODE")
    _add_mode(
        sub,
        "unsup",
        help="unsupervised SimCSE: each sentence is its own positive (dropout noise)",
        data_help=".txt file, one sentence per line",
    )
    _add_mode(
        sub,
        "sup",
        help="supervised SimCSE: (anchor, positive[, hard negative]) rows",
        data_help=".csv/.tsv with header sent0,sent1[,hard_neg] (or two columns, or "
        "premise,hypothesis,label NLI pairs: entailment = positive, contradiction = hard negative)",
    )
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])


def _add_mode(sub: argparse._SubParsersAction, mode: str, *, help: str, data_help: str) -> None:
    p = sub.add_parser(mode, help=help, description=help)
    add_model_argument(p)
    p.add_argument("--data", required=True, type=existing_file, help=data_help)
    p.add_argument("--out", required=True, type=Path, help="output folder (model + checkpoints)")
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--max-steps", type=positive_int, default=None, help="overrides --epochs")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument(
        "--lr", type=positive_float, default=_DEFAULT_LR[mode], help="peak learning rate"
    )
    p.add_argument("--warmup-ratio", type=float, default=0.0)
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--dropout", type=float, default=0.1, help="training dropout probability")
    p.add_argument("--pooling", default=None, help="pooling (default: the model's)")
    p.add_argument("--max-length", type=positive_int, default=None, help="training max tokens")
    p.add_argument("--hard-negative-weight", type=float, default=0.0)
    p.add_argument("--symmetric", action="store_true", help="also train positive -> anchor")
    p.add_argument(
        "--mini-batch-size",
        type=positive_int,
        default=None,
        help="gradient caching: embed in chunks of this size (large batches, little memory)",
    )
    p.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "bf16", "fp16"))
    p.add_argument("--eval-data", type=existing_file, default=None, help="STS dev TSV")
    p.add_argument("--eval-steps", type=positive_int, default=250)
    p.add_argument("--checkpoint-steps", type=positive_int, default=250)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint-last")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run, train_mode=mode)


def run(args: argparse.Namespace) -> int:
    """Load the data and model, train, print a summary."""
    from simcse_rag import checkpoint
    from simcse_rag.data import load_examples
    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.evaluation.sts import evaluate_sts, read_sts
    from simcse_rag.trainer import TrainingConfig, train, training_summary

    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite contradict each other; pick one.")
    config = TrainingConfig(
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_ratio=args.warmup_ratio,
        temperature=args.temperature,
        hard_negative_weight=args.hard_negative_weight,
        symmetric=args.symmetric,
        dropout=args.dropout,
        pooling=args.pooling,
        max_length=args.max_length,
        mini_batch_size=args.mini_batch_size,
        mixed_precision=args.mixed_precision,
        eval_steps=args.eval_steps,
        checkpoint_steps=args.checkpoint_steps,
        seed=args.seed,
    )
    examples = load_examples(args.data)
    if args.train_mode == "unsup" and args.data.suffix.lower() != ".txt":
        raise ValueError(f"train unsup reads a .txt file (one sentence per line), got {args.data}.")
    if args.train_mode == "sup" and all(ex.is_unsupervised for ex in examples):
        raise ValueError(
            f"{args.data} has no (anchor, positive) pairs; use 'train unsup' for plain sentences."
        )
    eval_fn = None
    if args.eval_data is not None:
        pairs = read_sts(args.eval_data)

        def eval_fn(encoder: SimCSEEncoder) -> float:
            return evaluate_sts(encoder, pairs)["spearman"]

    from simcse_rag.distributed import init_from_env

    device = init_from_env() or args.device  # torchrun / accelerate launch: one process per device
    encoder = SimCSEEncoder.from_pretrained(args.model, device=device)
    try:
        result = train(
            encoder,
            examples,
            config,
            output_dir=args.out,
            eval_fn=eval_fn,
            resume=args.resume,
            overwrite=args.overwrite,
            show_progress=not args.no_progress,
        )
    except (
        checkpoint.NoCheckpointError,
        checkpoint.OutputNotEmptyError,
        checkpoint.CheckpointMismatchError,
    ) as exc:
        raise _in_flags(exc) from None
    except FloatingPointError as exc:
        print(f"error: {_in_flags(exc)}", file=sys.stderr)
        return 1
    if device is None or int(os.environ.get("RANK", "0")) == 0:  # one summary under torchrun
        print(training_summary(result))
    return 0


def _in_flags(exc: Exception) -> Exception:
    """The trainer's error in the CLI's words: flags where the library names Python arguments.

    Errors that name no argument come back unchanged.
    """
    from simcse_rag import checkpoint

    if isinstance(exc, checkpoint.NoCheckpointError):
        return ValueError(f"{exc.reason}; drop --resume to start a new run.")
    if isinstance(exc, checkpoint.OutputNotEmptyError):
        return ValueError(
            f"--out {str(exc.out)!r} is not empty; pass --resume to continue its run, "
            "--overwrite to replace it, or choose another --out."
        )
    if isinstance(exc, checkpoint.CheckpointMismatchError):
        return ValueError(f"{exc.reason}; resume with the same --model.")
    if isinstance(exc, checkpoint.TrainingStoppedError):
        return FloatingPointError(
            f"{exc.reason}; lower --lr or check the data, then resume with --resume."
        )
    return exc
