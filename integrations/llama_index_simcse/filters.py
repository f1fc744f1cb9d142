"""LlamaIndex ``MetadataFilters`` translated into simcse-rag's filter language.

``EQ NE GT GTE LT LTE IN NIN`` map one to one onto ``$eq $ne $gt $gte $lt $lte $in $nin``, the
``AND`` / ``OR`` conditions onto ``$and`` / ``$or``, nested ``MetadataFilters`` recursively. The
rest (``ANY ALL CONTAINS TEXT_MATCH TEXT_MATCH_INSENSITIVE IS_EMPTY`` and the ``NOT``
condition) have no equivalent over flat metadata, and a filter silently weakened would leak
passages, so they raise a ``ValueError`` naming the operator and where it is.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilters,
)

from simcse_rag.index.filters import Filter, parse_filter

__all__ = ["to_filter"]

_OPERATORS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
}
_CONDITIONS = {FilterCondition.AND: "$and", FilterCondition.OR: "$or", None: "$and"}


def to_filter(filters: MetadataFilters | None) -> Filter | None:
    """Translate LlamaIndex ``filters`` (``None`` or an empty list: no filter).

    Raises:
        TypeError: ``filters`` is not a ``MetadataFilters``.
        ValueError: An operator or condition that does not map (named, with its position), or a
            value the filter language rejects (e.g. ``None`` for ``EQ``).
    """
    if filters is None:
        return None
    if not isinstance(filters, MetadataFilters):
        raise TypeError(
            f"filters must be a llama_index MetadataFilters, got {type(filters).__name__}."
        )
    if not filters.filters:
        return None
    return parse_filter(_translate(filters, "filters"))


def _translate(filters: MetadataFilters, where: str) -> dict[str, Any]:
    if filters.condition not in _CONDITIONS:
        raise ValueError(
            f"{where}: condition {_name(filters.condition)} has no equivalent; use AND or OR "
            "(write NOT as NE / NIN on the field)."
        )
    if not filters.filters:
        raise ValueError(f"{where}: empty nested MetadataFilters; give at least one filter.")
    parts = []
    for i, item in enumerate(filters.filters):
        here = f"{where}.filters[{i}]"
        if isinstance(item, MetadataFilters):
            parts.append(_translate(item, here))
            continue
        operator = getattr(item, "operator", FilterOperator.EQ)  # ExactMatchFilter: equality
        if operator not in _OPERATORS:
            supported = ", ".join(op.name for op in _OPERATORS)
            raise ValueError(
                f"{here} (key {item.key!r}): operator {_name(operator)} has no equivalent in "
                f"simcse-rag filters; use one of {supported}."
            )
        parts.append({item.key: {_OPERATORS[operator]: item.value}})
    return {_CONDITIONS[filters.condition]: parts}


def _name(value: Any) -> str:
    return getattr(value, "name", repr(value))
