"""``simcse-rag eval ...``: evaluation commands.

Each evaluation lives in its own module ``simcse_rag.cli.eval_<name>`` exposing
``register(subparsers)``; :data:`EVAL_MODULES` lists them.
"""

from __future__ import annotations

import argparse
import importlib

EVAL_MODULES: tuple[str, ...] = ("sts", "retrieval")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``eval`` group and its subcommands."""
    parser = subparsers.add_parser("eval", help="evaluate a model or retriever")
    sub = parser.add_subparsers(dest="eval_command", metavar="EVALUATION")
    for name in EVAL_MODULES:
        importlib.import_module(f"simcse_rag.cli.eval_{name}").register(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
