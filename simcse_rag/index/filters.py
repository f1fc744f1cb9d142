"""Metadata filters: one small query language over :attr:`Passage.metadata`.

A filter is a JSON object (a ``dict``, or its JSON text):

* ``{"lang": "en"}``: equality; ``{"lang": ["en", "zh"]}`` (a list) means ``$in``, as in
  LangChain's filter dicts. Several keys in one object must all hold (AND).
* ``{"year": {"$gte": 2020, "$lt": 2024}}``: operators ``$eq $ne $in $nin $gt $gte $lt $lte
  $exists``. The range operators compare numbers with numbers and ISO dates / datetimes
  (``"2024-05-01"``, ``"2024-05-01T12:00:00+02:00"``) as points in time; a datetime without a
  zone is taken as UTC.
* ``{"$and": [f1, f2]}``, ``{"$or": [f1, f2]}``: lists of filters.

A missing key never matches, whatever the operator, ``$ne`` and ``$nin`` included (``{"lang":
{"$ne": "en"}}`` keeps only passages that *have* a ``lang`` other than ``"en"``): a filter is
often access control, and a passage that lacks the field it is about must not slip through. The
one exception is ``{"$exists": false}``, whose whole meaning is "the key is missing". A metadata
value of another type than the filter's (a string where the filter compares a number) does not
match either.

:func:`parse_filter` checks the whole filter before any search: an unknown operator, a value of
the wrong type, an empty filter or text that is not JSON raises one ``ValueError`` naming the
part (``filter["year"]["$gt"]``) and the fix. A filter it cannot read never turns into "match
everything".

Why not a library: the candidates (``mongoquery``, ``jsonlogic``) neither reject unknown
operators up front nor compare ISO dates as dates, which are the two properties a filter used as
access control needs.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import numpy as np

from simcse_rag.schema import Passage

__all__ = ["OPERATORS", "AllowedCache", "Filter", "FilterIdCache", "parse_filter"]

#: Field operators understood inside ``{"key": {...}}``.
OPERATORS: tuple[str, ...] = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists")
_LOGIC = ("$and", "$or")
_RANGE = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}
#: Deeper nesting is a mistake (or an attack on the parser's recursion), never a real filter.
_MAX_DEPTH = 32
_EXAMPLE = '{"lang": "en", "year": {"$gte": 2020}}'

Predicate = Callable[[Mapping[str, Any]], bool]
_MISSING = object()


class Filter:
    """A parsed, checked metadata filter (make one with :func:`parse_filter`).

    Attributes:
        spec: The filter as given (a JSON-compatible dict).
        key: Canonical JSON of ``spec``: equal filters have equal keys (used for caching).
    """

    __slots__ = ("_predicate", "key", "spec")

    def __init__(self, spec: dict[str, Any], predicate: Predicate) -> None:
        self.spec = spec
        self.key = json.dumps(spec, sort_keys=True, ensure_ascii=False)
        self._predicate = predicate

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """Whether a passage with this ``metadata`` passes the filter."""
        return bool(self._predicate(metadata))

    def mask(self, passages: Iterable[Passage]) -> np.ndarray:
        """Boolean array, one entry per passage, ``True`` where it passes."""
        return np.fromiter((self._predicate(p.metadata) for p in passages), dtype=bool)

    def ids(self, passages: Iterable[Passage]) -> frozenset[str]:
        """Ids of the passages that pass: what the indexes restrict their search to."""
        return frozenset(p.id for p in passages if self._predicate(p.metadata))

    def __repr__(self) -> str:
        return f"Filter({self.key})"


class FilterIdCache:
    """The id sets of the last few filters, for an index whose contents change rarely.

    Evaluating a filter walks every passage's metadata in Python; RAG apps send the same few
    tenant / user filters again and again, so the id set is kept until the next write, whose
    caller must :meth:`clear` it. Thread-safe (searches share it under a read lock).

    Args:
        size: Filters kept (the oldest is dropped first).
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._sets: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def ids(self, flt: Filter, passages: Iterable[Passage]) -> frozenset[str]:
        """Ids of ``passages`` passing ``flt``, computed once per filter between writes."""
        with self._lock:
            found = self._sets.get(flt.key)
        if found is None:
            found = flt.ids(passages)
            with self._lock:
                if len(self._sets) >= self._size:
                    self._sets.pop(next(iter(self._sets)))
                self._sets[flt.key] = found
        return found

    def clear(self) -> None:
        """Forget every id set (call on each change of the passages or their metadata)."""
        with self._lock:
            self._sets.clear()


class AllowedCache:
    """What an index derives from an allowed-id set (row positions, FAISS labels), by identity.

    :class:`FilterIdCache` hands out the same ``frozenset`` for a filter until the next write, so
    an index can reuse what it built from it instead of looking every allowed id up again on
    each query. Entries hold the set itself, so an identity match is never a recycled ``id``.
    The owning index must :meth:`clear` it on every write (positions and labels change).

    Args:
        size: Sets kept (the oldest is dropped first).
    """

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._items: dict[int, tuple[Collection[str], Any]] = {}
        self._lock = threading.Lock()

    def get(self, allowed: Collection[str], build: Callable[[Collection[str]], Any]) -> Any:
        """``build(allowed)``, computed once per (identical) set between two :meth:`clear`."""
        with self._lock:
            hit = self._items.get(id(allowed))
        if hit is not None and hit[0] is allowed:
            return hit[1]
        value = build(allowed)
        with self._lock:
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[id(allowed)] = (allowed, value)
        return value

    def clear(self) -> None:
        """Forget everything (call on each write to the index)."""
        with self._lock:
            self._items.clear()


def parse_filter(obj: Any) -> Filter:
    """Check a filter and compile it.

    Args:
        obj: A :class:`Filter` (returned as is), a ``dict``, or its JSON text (what the CLI and
            HTTP API pass).

    Returns:
        The compiled :class:`Filter`.

    Raises:
        ValueError: Not JSON, not an object, empty, an unknown operator or a value of the wrong
            type; the message names the part, e.g. ``filter["year"]["$gt"]``.
    """
    if isinstance(obj, Filter):
        return obj
    if isinstance(obj, (str, bytes)):
        try:
            obj = json.loads(obj)
        except ValueError as exc:
            raise ValueError(
                f"filter is not valid JSON ({exc}); pass a JSON object such as {_EXAMPLE}."
            ) from None
        except RecursionError:
            raise ValueError(f"filter nests too deeply; at most {_MAX_DEPTH} levels.") from None
    return Filter(obj, _compile_object(obj, "filter", 0))


def _fail(where: str, problem: str, fix: str) -> ValueError:
    return ValueError(f"{where}: {problem}; {fix}.")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _compile_object(obj: Any, where: str, depth: int) -> Predicate:
    if depth > _MAX_DEPTH:
        raise _fail(where, "nests too deeply", f"use at most {_MAX_DEPTH} levels")
    if not isinstance(obj, dict):
        raise _fail(
            where,
            f"expected a JSON object, got {type(obj).__name__} {_show(obj)}",
            f"write it like {_EXAMPLE}",
        )
    if not obj:
        raise _fail(
            where, "empty filter", "give at least one condition (pass no filter to search all)"
        )
    parts: list[Predicate] = []
    for key, value in obj.items():
        if not isinstance(key, str) or not key:
            raise _fail(where, f"key {_show(key)} is not a non-empty string", "name a field")
        here = f"{where}[{json.dumps(key, ensure_ascii=False)}]"
        if key in _LOGIC:
            parts.append(_compile_logic(key, value, here, depth))
        elif key.startswith("$"):
            raise _fail(
                here,
                f"unknown operator {key!r}",
                f"combine filters with {' or '.join(_LOGIC)}, or put {', '.join(OPERATORS)} "
                'under a field, e.g. {"year": {"$gt": 2020}}',
            )
        else:
            parts.append(_compile_field(key, value, here, depth))
    return _all(parts)


def _compile_logic(op: str, value: Any, where: str, depth: int) -> Predicate:
    if not isinstance(value, list) or not value:
        raise _fail(
            where,
            f"expected a non-empty list of filters, got {_show(value)}",
            f'write {{"{op}": [{{"lang": "en"}}, {{"year": 2024}}]}}',
        )
    parts = [_compile_object(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    return _all(parts) if op == "$and" else _any(parts)


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    return lambda md: all(p(md) for p in parts)


def _any(parts: list[Predicate]) -> Predicate:
    return lambda md: any(p(md) for p in parts)


def _compile_field(field: str, value: Any, where: str, depth: int) -> Predicate:
    if isinstance(value, list):  # LangChain's shorthand: a list of accepted values
        return _compile_op(field, "$in", value, where)
    if not isinstance(value, dict):
        return _compile_op(field, "$eq", value, where)
    if not value:
        raise _fail(where, "empty operator object", 'give an operator, e.g. {"$eq": "en"}')
    parts = []
    for op, operand in value.items():
        here = f"{where}[{json.dumps(op, ensure_ascii=False)}]"
        if op not in OPERATORS:
            raise _fail(
                here,
                f"unknown operator {_show(op)}",
                f"use one of {', '.join(OPERATORS)} (nested metadata objects are not supported)",
            )
        parts.append(_compile_op(field, op, operand, here))
    return _all(parts)


def _check_scalar(value: Any, where: str) -> Any:
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(where, f"{value!r} is not a finite number", "compare to a finite number")
        return value
    fix = 'use {"$exists": false} for a missing key' if value is None else "use a string or number"
    raise _fail(where, f"{_show(value)} is not a string, number or boolean", fix)


def _compile_op(field: str, op: str, operand: Any, where: str) -> Predicate:
    if op == "$exists":
        if not isinstance(operand, bool):
            raise _fail(where, f"expected true or false, got {_show(operand)}", "write true/false")
        return lambda md: (field in md) is operand
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise _fail(where, f"expected a list, got {_show(operand)}", 'write ["a", "b"]')
        values = [_check_scalar(v, f"{where}[{i}]") for i, v in enumerate(operand)]
        want = op == "$in"
        return lambda md: _present(md, field) and any(_equal(md[field], v) for v in values) is want
    if op in _RANGE:
        return _compile_range(field, op, operand, where)
    target = _check_scalar(operand, where)
    want = op == "$eq"
    return lambda md: _present(md, field) and _equal(md[field], target) is want


def _compile_range(field: str, op: str, operand: Any, where: str) -> Predicate:
    compare = _RANGE[op]
    if _is_number(operand):
        _check_scalar(operand, where)
        return lambda md: _is_number(md.get(field)) and compare(md[field], operand)
    when = _as_time(operand) if isinstance(operand, str) else None
    if when is None:
        raise _fail(
            where,
            f"{_show(operand)} is neither a number nor an ISO date",
            'compare numbers, or dates like "2024-05-01" / "2024-05-01T12:00:00Z"',
        )

    def match(md: Mapping[str, Any]) -> bool:
        value = md.get(field, _MISSING)
        mine = _as_time(value) if isinstance(value, (str, dt.date)) else None
        return mine is not None and compare(mine, when)

    return match


def _present(md: Mapping[str, Any], field: str) -> bool:
    return field in md


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    # True == 1 in Python; in a filter a boolean only equals a boolean.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


@functools.lru_cache(maxsize=65_536)
def _parse_time(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            day = dt.date.fromisoformat(text.strip())
        except ValueError:
            return None
        value = dt.datetime(day.year, day.month, day.day)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _as_time(value: Any) -> dt.datetime | None:
    """``value`` as an aware datetime (zone-less taken as UTC), or ``None`` if it is not one."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    if isinstance(value, str) and value.strip():
        return _parse_time(value)
    return None
