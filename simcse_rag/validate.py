"""Argument checks for code built on simcse-rag, with the wording the core's own errors use.

The framework adapters (``langchain_simcse``, ``llama_index_simcse``) and user code check their
arguments with these, so a mistake reads the same wherever it is made. Each check returns the
value it accepted (normalised, e.g. numpy integers to ``int``) and raises ``ValueError`` /
``TypeError`` naming the argument, the bad value and what is expected; ``bool`` is refused
wherever a number is expected. The implementations live in the core's internal
``simcse_rag._validate``; this module is their public face.
"""

from __future__ import annotations

from simcse_rag._validate import (
    check_k,
    check_mode,
    non_negative_int,
    non_negative_number,
    one_of,
    positive_int,
    positive_number,
    str_list,
    weight_list,
)

__all__ = [
    "check_k",
    "check_mode",
    "non_negative_int",
    "non_negative_number",
    "one_of",
    "positive_int",
    "positive_number",
    "str_list",
    "weight_list",
]
