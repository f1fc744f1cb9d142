"""The JSONL reply cache: round trip, keys, a torn last line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simcse_rag.generation.cache import QuestionCache, cache_key


def test_replies_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "q.jsonl"
    key = cache_key("m", "d1", "text", 3, None)
    with QuestionCache(path) as cache:
        cache.add(key, "What is it?", model="m", passage_id="d1", n=3)
    again = QuestionCache(path)
    assert again.get(key) == "What is it?" and len(again) == 1
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["passage_id"] == "d1" and record["prompt_version"] == 1


def test_key_changes_with_every_input() -> None:
    base = cache_key("m", "d1", "text", 3, None)
    assert base == cache_key("m", "d1", "text", 3, "")
    others = [
        cache_key("m2", "d1", "text", 3, None),
        cache_key("m", "d2", "text", 3, None),
        cache_key("m", "d1", "text!", 3, None),
        cache_key("m", "d1", "text", 4, None),
        cache_key("m", "d1", "text", 3, "finance"),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_torn_last_line_is_skipped_and_the_next_write_starts_a_line(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    good = json.dumps({"key": "a", "reply": "first?"})
    path.write_text(good + "\n" + '{"key": "b", "rep', encoding="utf-8")
    cache = QuestionCache(path)
    assert cache.get("a") == "first?" and cache.get("b") is None
    with cache:
        cache.add("c", "third?")
    reread = QuestionCache(path)
    assert reread.get("a") == "first?" and reread.get("c") == "third?"
    assert path.read_text(encoding="utf-8").splitlines()[-1].startswith('{"key": "c"')


def test_add_needs_the_cache_open(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="with cache"):
        QuestionCache(tmp_path / "q.jsonl").add("k", "r")


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="give a file path"):
        QuestionCache(tmp_path)
