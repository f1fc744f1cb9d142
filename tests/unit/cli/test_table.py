"""The width-aware terminal table: wide (Chinese) characters count two columns."""

from __future__ import annotations

import pytest

from simcse_rag.cli.table import display_width, format_table, pad, truncate


def test_display_width_counts_wide_characters() -> None:
    assert display_width("abc") == 3
    assert display_width("儿童发烧") == 8
    assert display_width("ibuprofen 布洛芬") == 16


@pytest.mark.parametrize("text", ["儿童发烧怎么办呢", "children with fever", "宝宝 fever 39度"])
@pytest.mark.parametrize("width", [5, 8, 11])
def test_truncate_fits_the_width(text: str, width: int) -> None:
    cut = truncate(text, width)
    assert display_width(cut) <= width
    if display_width(text) > width:
        assert cut.endswith("…")
    else:
        assert cut == text


def test_table_columns_line_up_with_chinese() -> None:
    rows = [["id", "title"], ["zh-1", "川崎病"], ["en-1", "Kawasaki disease"]]
    lines = format_table(rows)
    starts = {
        display_width(line[: line.index(cell)])
        for line, cell in zip(
            [lines[0], lines[2], lines[3]], ["title", "川崎病", "Kawasaki"], strict=True
        )
    }
    assert starts == {6}
    assert pad("川", 4, ">") == "  川"
