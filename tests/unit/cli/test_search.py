"""``simcse-rag search --filter``: hits stay inside the filter; a bad filter is one error line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simcse_rag.cli import main

CORPUS = [
    {"_id": "d1", "text": "My child has a fever and a cough.", "lang": "en", "year": 2021},
    {"_id": "d2", "text": "A fever in a child at night.", "lang": "en", "year": 2019},
    {"_id": "d3", "text": "儿童发烧怎么办", "lang": "zh", "year": 2022},
    {"_id": "d4", "text": "Fever and cough medicine.", "year": 2023},
]


@pytest.fixture
def built(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in CORPUS))
    out = tmp_path / "idx"
    args = ["index", "build", "--corpus", str(corpus), "--out", str(out)]
    assert main([*args, "--model", str(tiny_model_dir), "--no-progress"]) == 0
    capsys.readouterr()
    return out


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"lang": "en"}, {"d1", "d2"}),
        ({"year": {"$gte": 2021}}, {"d1", "d3", "d4"}),
        ({"lang": {"$ne": "en"}}, {"d3"}),  # d4 has no lang: a missing key never matches
        ({"$or": [{"lang": "zh"}, {"year": 2019}]}, {"d2", "d3"}),
    ],
)
def test_search_filter_keeps_only_matching_hits(built, capsys, spec, expected):
    code = main(["search", str(built), "fever", "-k", "10", "--json", "--filter", json.dumps(spec)])
    assert code == 0
    hits = json.loads(capsys.readouterr().out)
    assert {h["id"] for h in hits} == expected


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ('{"year": {"$gt": "abc"}}', 'filter["year"]["$gt"]'),
        ('{"year": {"$regex": "x"}}', "unknown operator"),
        ("lang=en", "filter is not valid JSON"),
        ("{}", "empty filter"),
    ],
)
def test_bad_filter_is_one_error_line_and_exit_2(built, capsys, text, part):
    before = {p: p.read_bytes() for p in built.rglob("*") if p.is_file()}
    assert main(["search", str(built), "fever", "--filter", text]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert part in err
    assert captured.out == ""  # nothing returned
    assert {p: p.read_bytes() for p in built.rglob("*") if p.is_file()} == before
