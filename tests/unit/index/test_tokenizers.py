"""BM25 tokenizers: English stemming/stopwords, Chinese segmentation, mixed text."""

from __future__ import annotations

import pytest

from simcse_rag.index.tokenizers import (
    get_tokenizer,
    tokenize,
    tokenize_auto,
    tokenize_en,
    tokenize_zh,
)


def test_english_lowercases_stems_and_drops_stopwords() -> None:
    tokens = tokenize_en("The Children are RUNNING with fevers, and coughing!")
    assert "the" not in tokens and "and" not in tokens
    assert tokens == [t.lower() for t in tokens]
    assert "run" in tokens and "fever" in tokens and "cough" in tokens
    assert tokenize_en("fevers") == tokenize_en("fever")


def test_english_keeps_unicode_words_and_numbers() -> None:
    tokens = tokenize_en("Café costs 2019 €; naïve")
    assert "café" in tokens and "2019" in tokens and any(t.startswith("naïv") for t in tokens)
    assert tokenize_en("") == [] and tokenize_en("!!! ...") == []


def test_chinese_is_segmented_into_words() -> None:
    tokens = tokenize_zh("儿童发烧怎么办")
    assert "儿童" in tokens and "发烧" in tokens
    assert all(len(t) >= 1 for t in tokens)
    assert "，" not in tokenize_zh("发烧，咳嗽。")


def test_chinese_stopwords_dropped() -> None:
    assert "的" not in tokenize_zh("我的孩子发烧了")


def test_mixed_text_handles_both_scripts() -> None:
    tokens = tokenize_auto("BMI指数偏高 Running fevers")
    assert "bmi" in tokens and "指数" in tokens
    assert "run" in tokens and "fever" in tokens  # Latin words follow the English pipeline


def test_auto_picks_english_path_for_latin_text() -> None:
    text = "children with fevers"
    assert tokenize_auto(text) == tokenize_en(text)


def test_named_lookup_and_errors() -> None:
    assert get_tokenizer("en") is tokenize_en
    assert tokenize("发烧", "zh") == tokenize_zh("发烧")
    with pytest.raises(ValueError, match="Unknown tokenizer 'fr'.*auto, en, zh"):
        get_tokenizer("fr")
    with pytest.raises(TypeError, match="takes a str"):
        tokenize(3)  # type: ignore[arg-type]
