"""The ``simcse-rag`` command line.

Each command group lives in its own module under ``simcse_rag.cli`` and exposes
``register(subparsers)``; :data:`COMMAND_MODULES` lists them in help order. User mistakes
(:class:`ValueError`, :class:`TypeError`, missing files, missing extras) print a one-line
``error: ...`` to stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from simcse_rag import __version__
from simcse_rag.generation.errors import GeneratorError

COMMAND_MODULES: tuple[str, ...] = (
    "encode",
    "eval",
    "train",
    "adapt",
    "demo",
    "index",
    "search",
    "serve",
)

#: Exceptions that signal a user mistake rather than a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    ImportError,
    GeneratorError,  # an LLM server that refuses, rejects the model or key, or stops answering
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="simcse-rag",
        description="SimCSE embeddings, hybrid BM25 + dense search (RRF) and domain adaptation.",
    )
    parser.add_argument("--version", action="version", version=f"simcse-rag {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"simcse_rag.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        Process exit status: 0 on success, 2 on a user mistake, 130 when interrupted (Ctrl-C),
        143 when terminated (SIGTERM).
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _quiet_third_party()
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        with _sigterm_unwinds():
            return int(args.func(args) or 0)
    except Terminated:
        print("error: terminated (SIGTERM); partial output was removed", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM so ``finally`` blocks remove temporary folders."""


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while a command runs.

    Python's default SIGTERM action ends the process at once, skipping ``finally``: a killed
    ``adapt`` or ``index build`` would leave its temporary folders behind.
    Raising instead unwinds the stack like Ctrl-C does (existing outputs are never touched:
    they are only replaced by an atomic rename at the very end).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _quiet_third_party() -> None:
    if "transformers" not in sys.modules:
        # Importing transformers only to silence it costs seconds that a search through a
        # cached ONNX query model never otherwise spends; it reads these settings when (and if)
        # it is imported.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
