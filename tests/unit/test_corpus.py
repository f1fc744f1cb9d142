"""Corpus readers: JSON Lines (``_id`` / ``id``), CSV / TSV with a header, text lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simcse_rag.corpus import read_corpus
from simcse_rag.schema import Passage


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_with_bom_quoting_title_and_metadata(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "docs.csv",
        "id,Title,text,source\r\n"
        'd1,Fever,"My child has a fever, and a cough",faq\r\n'
        "\r\n"
        'd2,,"two\nlines with ""quotes""",web\r\n',
        encoding="utf-8-sig",  # as Excel writes it
    )
    assert read_corpus(path) == [
        Passage(
            "d1", "Fever\nMy child has a fever, and a cough", {"title": "Fever", "source": "faq"}
        ),
        Passage("d2", 'two\nlines with "quotes"', {"title": "", "source": "web"}),
    ]


def test_tsv_splits_on_tabs_only(tmp_path: Path) -> None:
    path = _write(tmp_path / "docs.tsv", '_id\ttext\nd1\t"quoted" start, with a comma\n')
    assert read_corpus(path) == [Passage("d1", '"quoted" start, with a comma', {})]


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("doc,body", "'_id' (or 'id') and 'text'"),
        ("id,title", "'text'"),
        ("title,text", "'_id' (or 'id')"),
    ],
)
def test_table_header_must_name_id_and_text(tmp_path: Path, header: str, missing: str) -> None:
    path = _write(tmp_path / "docs.csv", f"{header}\na,b\n")
    with pytest.raises(ValueError, match="lacks the column") as info:
        read_corpus(path)
    assert str(path) in str(info.value) and f"column(s) {missing};" in str(info.value)


def test_table_bad_row_is_named_by_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "docs.csv", 'id,text\nd1,"spans\ntwo lines"\nd2,one,extra\n')
    with pytest.raises(ValueError, match=r"docs\.csv:4: expected 2 comma-separated fields"):
        read_corpus(path)
    path = _write(tmp_path / "quote.csv", 'id,text\nd1,"never closed\n')
    with pytest.raises(ValueError, match=r"quote\.csv:2: malformed row"):
        read_corpus(path)
    path = _write(tmp_path / "empty_id.tsv", "id\ttext\n\tno id\n")
    with pytest.raises(ValueError, match=r"empty_id\.tsv:2: missing or empty '_id'"):
        read_corpus(path)


def test_table_duplicate_ids_and_encoding(tmp_path: Path) -> None:
    path = _write(tmp_path / "dup.tsv", "id\ttext\nd1\ta\nd2\tb\nd1\tc\n")
    with pytest.raises(ValueError, match=r"dup\.tsv:4: duplicate id 'd1' \(first on line 2\)"):
        read_corpus(path)
    path = _write(tmp_path / "latin.csv", "id,text\nd1,café\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"latin\.csv is not UTF-8"):
        read_corpus(path)


@pytest.mark.parametrize("name", ["docs.md", "docs.xlsx", "docs"])
def test_unknown_extension_names_the_formats(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path / name, "id,text\nd1,a\n")
    with pytest.raises(ValueError, match="unsupported extension") as info:
        read_corpus(path)
    assert all(s in str(info.value) for s in (".jsonl", ".csv", ".tsv", ".txt", name))


def test_jsonl_id_alias_and_conflict(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "alias"}, {"_id": 7, "id": "7", "text": "same"}]
    path = _write(tmp_path / "c.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert [p.id for p in read_corpus(path)] == ["a", "7"]
    path = _write(tmp_path / "d.jsonl", json.dumps({"_id": "x", "id": "y", "text": "t"}) + "\n")
    with pytest.raises(ValueError, match=r"d\.jsonl:1: '_id' 'x' and 'id' 'y' differ"):
        read_corpus(path)


def test_txt_ignores_a_byte_order_mark(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.txt", "first\nsecond\n", encoding="utf-8-sig")
    assert [p.text for p in read_corpus(path)] == ["first", "second"]
