"""Argument checks shared by the public API: one place, one wording per mistake.

Each check returns the value it accepted (normalised where that helps, e.g. numpy integers to
``int``) and raises ``ValueError`` / ``TypeError`` with a message naming the argument, the bad
value and what is expected. ``bool`` is rejected wherever a number is expected: ``True`` is an
``int`` in Python, and ``k=True`` is always a mistake.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from simcse_rag.schema import SEARCH_MODES


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(value: Any, name: str) -> int:
    """``value`` as an ``int`` if it is an integer > 0.

    Raises:
        ValueError: Anything else (bools included).
    """
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def int_at_least(value: Any, name: str, minimum: int) -> int:
    """``value`` as an ``int`` if it is an integer >= ``minimum``.

    Raises:
        ValueError: Anything else (bools included).
    """
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def non_negative_int(value: Any, name: str) -> int:
    """``value`` as an ``int`` if it is an integer >= 0.

    Raises:
        ValueError: Anything else (bools included).
    """
    return int_at_least(value, name, 0)


def optional_positive_int(value: Any, name: str) -> int | None:
    """``None``, or ``value`` as an ``int`` if it is an integer > 0.

    Raises:
        ValueError: Anything else (bools included).
    """
    if value is None:
        return None
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")
    return int(value)


def positive_ints(values: Any, name: str) -> tuple[int, ...]:
    """A non-empty sequence of integers > 0 (cut-offs, sizes), as a tuple of ``int``.

    Raises:
        ValueError: Empty, not a sequence, or an item that is not an integer > 0.
    """
    items = tuple(values) if isinstance(values, Iterable) and not isinstance(values, str) else ()
    if not items or not all(_is_int(v) and v > 0 for v in items):
        raise ValueError(f"{name} must be positive integers, got {values!r}.")
    return tuple(int(v) for v in items)


def non_negative_number(value: Any, name: str) -> float:
    """``value`` as a ``float`` if it is a finite number >= 0.

    Raises:
        ValueError: Anything else (bools, NaN and infinity included).
    """
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def positive_number(value: Any, name: str) -> float:
    """``value`` as a ``float`` if it is a finite number > 0.

    Raises:
        ValueError: Anything else (bools, NaN and infinity included).
    """
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return float(value)


def number_between(value: Any, name: str, low: float, high: float) -> float:
    """``value`` as a ``float`` if it is a number in ``[low, high]``.

    Raises:
        ValueError: Anything else (bools and NaN included).
    """
    if not _is_number(value) or not low <= value <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], got {value!r}.")
    return float(value)


def check_weights(value: Any, names: Iterable[str], what: str = "weights") -> dict[str, float]:
    """A mapping from some of ``names`` to finite numbers >= 0, as a plain ``dict``.

    Raises:
        ValueError: Not a mapping, an unknown key, or a bad number (the key is named).
    """
    allowed = tuple(names)
    if not isinstance(value, Mapping) or set(value) - set(allowed):
        quoted = " / ".join(repr(n) for n in allowed)
        raise ValueError(f"{what} must map {quoted} to numbers, got {value!r}.")
    return {k: non_negative_number(w, f"{what}[{k!r}]") for k, w in value.items()}


def weight_list(value: Any, n: int, item: str) -> list[float]:
    """One finite number >= 0 per ``item`` (``n`` of them) as ``float``; ``None`` weighs each 1.

    Args:
        value: The weights the caller passed, or ``None``.
        n: How many items there are.
        item: What each weight is for, e.g. ``"retriever"``.

    Raises:
        ValueError: Not ``n`` weights, or a bad number (its position is named).
    """
    if value is None:
        return [1.0] * n
    weights = list(value)
    if len(weights) != n:
        raise ValueError(f"Got {len(weights)} weights for {n} {item}s; pass one per {item}.")
    return [non_negative_number(w, f"weights[{i}]") for i, w in enumerate(weights)]


def one_of(value: Any, name: str, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options`` (a setting that names a method, rule or backend).

    Raises:
        ValueError: Anything else (the message lists the options).
    """
    choices = tuple(options)
    if value not in choices:
        raise ValueError(f"{name} {value!r} unknown; choose one of: {', '.join(choices)}.")
    return value


def check_k(value: Any) -> int:
    """The number of hits to return: an integer > 0."""
    return positive_int(value, "k")


def check_mode(value: Any) -> str:
    """One of :data:`~simcse_rag.schema.SEARCH_MODES`.

    Raises:
        ValueError: Anything else (the message lists the modes).
    """
    if value not in SEARCH_MODES:
        raise ValueError(f"Unknown mode {value!r}; choose one of: {', '.join(SEARCH_MODES)}.")
    return value


def str_ids(ids: Iterable[str], what: str = "ids") -> list[str]:
    """A list of non-empty string ids.

    Raises:
        TypeError: A single string where a sequence is expected.
        ValueError: An item that is not a non-empty string (its position is named).
    """
    if isinstance(ids, str):
        raise TypeError(
            f"{what} must be a sequence of strings, not a single string; wrap it in a list."
        )
    out = list(ids)
    for i, doc_id in enumerate(out):
        if not isinstance(doc_id, str) or not doc_id:
            raise ValueError(f"{what}[{i}] must be a non-empty string, got {doc_id!r}.")
    return out


def str_list(values: Iterable[str], what: str, *, single: str) -> list[str]:
    """A list of strings (empty strings allowed).

    Args:
        values: What the caller passed.
        what: The argument's name, e.g. ``"texts"``.
        single: The fix for a bare string, e.g. ``"wrap a single text in a list"``.

    Raises:
        TypeError: A bare string, or an item that is not a string (its position is named).
    """
    if isinstance(values, str):
        raise TypeError(f"{what} must be a sequence of strings; {single}.")
    out = list(values)
    for i, value in enumerate(out):
        if not isinstance(value, str):
            raise TypeError(f"{what}[{i}] is {type(value).__name__}, expected str.")
    return out


def non_empty_texts(values: Iterable[str], what: str, *, single: str) -> tuple[str, ...]:
    """A tuple of texts that are not blank (queries, hard negatives).

    Args:
        values: What the caller passed.
        what: The argument's name, e.g. ``"DemoConfig.queries"``.
        single: The fix for a bare string, e.g. ``"wrap one in a tuple"``.

    Raises:
        TypeError: A bare string.
        ValueError: An item that is not a string or is blank (its position is named).
    """
    if isinstance(values, str):
        raise TypeError(f"{what} must be a sequence of strings; {single}.")
    out = tuple(values)
    for i, value in enumerate(out):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{what}[{i}] must be non-empty text, got {value!r}.")
    return out


def float_matrix(vectors: Any, dim: int, what: str = "vectors") -> np.ndarray:
    """``vectors`` as a C-contiguous float32 ``(n, dim)`` array of finite numbers (FAISS needs it).

    Raises:
        ValueError: Wrong shape, NaN or infinity.
        TypeError: Not numeric.
    """
    arr = np.asarray(vectors)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}), got {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}.")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contain NaN or infinity.")
    return arr
