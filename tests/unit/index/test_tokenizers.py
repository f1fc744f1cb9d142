"""BM25 tokenizers: English stemming/stopwords, Chinese segmentation, mixed text."""

from __future__ import annotations

import pytest

from simcse_rag.index.tokenizers import (
    TOKENIZER_RULES,
    EnglishRule,
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


def test_single_letters_and_lone_digits_are_dropped() -> None:
    tokens = tokenize_en("Vitamin B and type 2 diabetes in Q3 2019")
    assert "b" not in tokens and "2" not in tokens
    assert "q3" in tokens and "2019" in tokens and "diabet" in tokens


def test_numbers_with_separators_stay_whole() -> None:
    tokens = tokenize_en("Total sales $1,452.4 million, up 12% from 3.2m")
    assert "1452.4" in tokens and "12" in tokens and "3.2" in tokens
    assert not {"1", "452", "4", "2m"} & set(tokens)
    # thousands separators do not matter: the table's "1,452.4" matches a query's "1452.4"
    assert tokenize_en("1452.4") == tokenize_en("1,452.4") == ["1452.4"]


def test_numbers_whole_inside_chinese_text() -> None:
    tokens = tokenize_zh("收入为1,234.5元，增长12%")
    assert "1234.5" in tokens and "12" in tokens and "收入" in tokens
    assert "1" not in tokens and "234" not in tokens


def test_version_1_keeps_the_old_rule() -> None:
    old = get_tokenizer("en", 1)
    assert old("Vitamin B 2 costs $1,452.4") == ["vitamin", "b", "2", "cost", "1", "452", "4"]
    assert get_tokenizer("zh", 1)("血压1,234毫米") == tokenize_zh(
        "血压1,234毫米", TOKENIZER_RULES[1]
    )
    with pytest.raises(ValueError, match="Unknown tokenizer version 99.*index build"):
        get_tokenizer("en", 99)


def test_english_rule_options_and_errors() -> None:
    text = "What are the symptoms of the flu"
    assert "symptom" in EnglishRule()(text) and "symptoms" in EnglishRule(stem=False)(text)
    assert "what" in EnglishRule()(text) and "what" not in EnglishRule(stopwords="lucene_plus")(
        text
    )
    assert "the" in EnglishRule(stopwords="none")(text)
    assert EnglishRule(numbers="both")("1,234.5") == ["1234.5", "1", "234", "5"]
    with pytest.raises(ValueError, match="numbers 'round' unknown"):
        EnglishRule(numbers="round")
    with pytest.raises(ValueError, match="stopwords 'fr' unknown"):
        EnglishRule(stopwords="fr")
    with pytest.raises(ValueError, match="min_word_chars must be >= 1"):
        EnglishRule(min_word_chars=0)
