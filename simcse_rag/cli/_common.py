"""Helpers shared by CLI commands (internal)."""

from __future__ import annotations

import argparse
from pathlib import Path

from simcse_rag.corpus import CORPUS_FORMATS, CORPUS_SUFFIXES, read_corpus
from simcse_rag.index.fusion import DEFAULT_FUSION, FUSION_METHODS

#: Help text of every ``--corpus`` option.
CORPUS_HELP = f"corpus file: {CORPUS_FORMATS}; other columns/keys become metadata"


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--model`` (default: the bundled all-MiniLM-L6-v2)."""
    parser.add_argument(
        "--model",
        default=None,
        help="model folder or Hugging Face id (default: bundled all-MiniLM-L6-v2, offline)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: auto)")


def add_retriever_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the :class:`~simcse_rag.index.hybrid.HybridConfig` options shared by commands."""
    parser.add_argument("--dense-index", default="auto", choices=("auto", "flat", "ivf", "hnsw"))
    parser.add_argument("--tokenizer", default="auto", choices=("auto", "en", "zh"))
    parser.add_argument("--batch-size", type=positive_int, default=64)
    # Fusion options default to None: unset, the setting saved with an adapted --model
    # (simcse_rag.json) applies, else the library's.
    parser.add_argument(
        "--fusion",
        default=None,
        choices=FUSION_METHODS,
        help=f"how dense and BM25 rankings are fused (default: the one saved with an adapted "
        f"--model, else {DEFAULT_FUSION}): rrf (reciprocal rank), relative_score (min-max scaled "
        "scores), dist_based (scores scaled over mean +- 3 sigma), dist_peak / rrf_peak "
        "(dist_based / rrf, each ranking weighted per query by how far its top hit stands out)",
    )
    parser.add_argument(
        "--rrf-k",
        type=float,
        default=None,
        help="RRF constant, rrf methods only (default: saved with --model, else 60)",
    )
    parser.add_argument(
        "--dense-weight",
        type=float,
        default=None,
        help="fusion weight of the dense ranking; BM25 weight 1 (default: saved with --model, "
        "else 1)",
    )
    parser.add_argument(
        "--query-backend",
        default="auto",
        choices=("auto", "torch", "onnx", "onnx-int8"),
        help="query encoder: auto = ONNX Runtime int8 on CPU (fastest; onnx = fp32, exact)",
    )
    add_passage_backend_argument(parser)


def add_passage_backend_argument(parser: argparse.ArgumentParser, *, keep: bool = False) -> None:
    """Add ``--passage-backend``; with ``keep`` (an existing index) its default keeps the
    index's backend and another one re-encodes the index."""
    from simcse_rag.passage_encoder import DEFAULT_BACKEND, PASSAGE_BACKENDS

    parser.add_argument(
        "--passage-backend",
        default="keep" if keep else DEFAULT_BACKEND,
        choices=(("keep",) if keep else ()) + PASSAGE_BACKENDS,
        help="passage encoder: torch (PyTorch fp32), onnx (ONNX Runtime fp32, same vectors), "
        "onnx-int8 (fastest, small quality cost) or auto (onnx-int8 on CPU); "
        + (
            "keep (default) uses the index's, another re-encodes the whole index"
            if keep
            else f"default {DEFAULT_BACKEND}; an index keeps the one it was built with"
        ),
    )


def retriever_config(args: argparse.Namespace, **extra: object):  # noqa: ANN201 - lazy import
    """The HybridConfig described by :func:`add_retriever_arguments`' options (fusion options
    not given: the setting saved with ``--model``, else the defaults)."""
    from simcse_rag.index.hybrid import HybridConfig

    return HybridConfig.for_model(
        args.model,
        dense_index=args.dense_index,
        tokenizer=args.tokenizer,
        batch_size=args.batch_size,
        query_backend=args.query_backend,
        **fusion_options(args),
        passage_backend=args.passage_backend,
        **extra,
    )


def fusion_options(args: argparse.Namespace) -> dict[str, object]:
    """The fusion fields of HybridConfig the user gave on the command line."""
    given: dict[str, object] = {}
    if args.fusion is not None:
        given["fusion"] = args.fusion
    if args.rrf_k is not None:
        given["rrf_k"] = args.rrf_k
    if args.dense_weight is not None:
        given["weights"] = {"dense": args.dense_weight, "bm25": 1.0}
    return given


def load_encoder(  # noqa: ANN201 - avoid importing torch at parse time
    args: argparse.Namespace, *, tiny_dir: Path | None = None
):
    """Load the encoder named by ``--model`` / ``--device``, or the tiny one of ``--tiny``.

    Args:
        args: Parsed options; ``tiny`` is read where the command has a ``--tiny`` option.
        tiny_dir: Folder the tiny model is written to (see
            :func:`simcse_rag.testing.load_encoder`).

    Raises:
        ValueError: ``--tiny`` and ``--model`` are both given.
    """
    from simcse_rag import testing

    tiny = getattr(args, "tiny", False)
    if tiny and args.model:
        raise ValueError("--tiny and --model exclude each other; pass one of them.")
    return testing.load_encoder(
        args.model, tiny=tiny, tiny_dir=tiny_dir, device=getattr(args, "device", None)
    )


def check_output_folder(out: Path, *, overwrite: bool) -> Path:
    """Refuse an existing non-empty ``--out`` unless ``--overwrite``, in the CLI's words.

    The library's message also names the ``overwrite=True`` argument for Python callers; a CLI
    user should only see the flags.

    Raises:
        FileExistsError: ``out`` exists, is not empty and ``overwrite`` is false.
        NotADirectoryError: ``out`` is a file.
    """
    from simcse_rag.adapt import check_output_dir

    try:
        return check_output_dir(out, overwrite=overwrite)
    except FileExistsError:
        raise FileExistsError(
            f"--out {str(out)!r} already exists and is not empty; pass --overwrite to replace "
            "it, or choose another --out."
        ) from None


def existing_file(value: str) -> Path:
    """argparse type: a path that must exist and be a file."""
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"file {value!r} does not exist")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value!r} is not a file")
    return path


def positive_int(value: str) -> int:
    """argparse type: an integer > 0."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def positive_float(value: str) -> float:
    """argparse type: a finite number > 0 (learning rates)."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0.0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def read_lines(path: Path) -> list[str]:
    """Read a UTF-8 text file, one item per line (trailing newline stripped, blanks kept out).

    Raises:
        ValueError: The file is not UTF-8.
    """
    try:
        # utf-8-sig: a byte-order mark (Notepad, Excel) must not become part of the first text.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}); re-encode it.") from exc
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def read_texts(path: Path) -> list[str]:
    """Read the texts of a ``.txt`` file (one per non-blank line) or of a corpus file.

    A ``.jsonl`` / ``.json`` / ``.csv`` / ``.tsv`` file is read as a corpus (see
    :mod:`simcse_rag.corpus`) and its passages' texts (title and text) are returned in file order,
    so a header row or JSON syntax is never embedded as if it were text.

    Raises:
        ValueError: An unsupported extension (the formats are named), a malformed corpus, or a
            file that is not UTF-8.
    """
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return read_lines(path)
    if suffix in CORPUS_SUFFIXES:
        return [p.text for p in read_corpus(path, allow_empty=True)]
    raise ValueError(
        f"{str(path)!r} has an unsupported extension {suffix or '(none)'!r}; use .txt (one text "
        f"per line) or a corpus file: {CORPUS_FORMATS}."
    )
