"""``simcse-rag encode``: embed a text file into a ``.npy`` matrix."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from simcse_rag.cli._common import (
    add_model_argument,
    existing_file,
    load_encoder,
    positive_int,
    read_texts,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``encode`` command."""
    parser = subparsers.add_parser(
        "encode",
        help="embed texts (one per line) into an .npy matrix",
        description="Embed each non-blank line of a UTF-8 .txt file, or each passage of a corpus "
        "file (.jsonl/.json/.csv/.tsv, as in 'index build'); writes an (n, dim) float32 .npy "
        "matrix in file order.",
    )
    add_model_argument(parser)
    parser.add_argument(
        "--input",
        required=True,
        type=existing_file,
        help=".txt (one text per line) or a corpus file",
    )
    parser.add_argument("--output", required=True, type=Path, help="output .npy path")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--no-normalize", action="store_true", help="skip L2 normalisation")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Encode the input file and write the matrix atomically."""
    import numpy as np

    if args.output.suffix != ".npy":
        raise ValueError(f"--output {str(args.output)!r} must end with .npy.")
    if args.output.is_dir():
        raise ValueError(f"--output {str(args.output)!r} is a directory; give a .npy file path.")
    texts = read_texts(args.input)
    if not texts:
        raise ValueError(f"--input {str(args.input)!r} has no texts to encode.")
    encoder = load_encoder(args)
    vectors = encoder.encode(
        texts,
        batch_size=args.batch_size,
        normalize=not args.no_normalize,
        show_progress=not args.no_progress,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.output.parent, suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, vectors)
        os.replace(tmp, args.output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(f"wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {args.output}")
    return 0
