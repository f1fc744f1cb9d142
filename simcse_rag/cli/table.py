"""Width-aware plain-text tables for the terminal (internal to the CLI).

Hand-written on purpose: ``str.ljust`` / ``format()`` count characters, not terminal columns, so
Chinese text (two columns per character) breaks the alignment; ``unicodedata`` is in the standard
library, and a table library (rich, tabulate) is not worth a dependency for a few tables.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

_SPACES = str.maketrans({"\n": " ", "\r": " ", "\t": " "})


def char_width(char: str) -> int:
    """Terminal columns of one character: 2 for East Asian wide / full-width, 0 for combining."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Terminal columns that ``text`` takes."""
    return sum(char_width(c) for c in text)


def truncate(text: str, width: int) -> str:
    """Cut ``text`` to at most ``width`` columns (ending in "…" when cut); line breaks and tabs
    become spaces."""
    text = text.translate(_SPACES)
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for c in text:
        w = char_width(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out).rstrip() + "…"


def pad(text: str, width: int, align: str = "<") -> str:
    """Pad ``text`` with spaces to ``width`` columns (``<`` left, ``>`` right)."""
    fill = " " * max(0, width - display_width(text))
    return text + fill if align == "<" else fill + text


def format_table(
    rows: Sequence[Sequence[str]], *, widths: Sequence[int] | None = None, align: str = ""
) -> list[str]:
    """Lay out rows (the first is the header) in aligned columns separated by two spaces.

    Args:
        rows: Cells as strings.
        widths: Column widths in terminal columns (default: the widest cell of each column);
            longer cells are truncated.
        align: One ``<`` or ``>`` per column (default: all left).
    """
    n = max(len(r) for r in rows)
    if widths is None:
        widths = [max(display_width(r[i]) for r in rows if i < len(r)) for i in range(n)]
    align = align or "<" * n
    out = []
    for j, row in enumerate(rows):
        cells = [pad(truncate(c, widths[i]), widths[i], align[i]) for i, c in enumerate(row)]
        out.append("  ".join(cells).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return out
