"""The question prompt (language, domain) and reply parsing (drops counted by reason)."""

from __future__ import annotations

import pytest

from simcse_rag.generation.prompts import (
    MAX_PASSAGE_CHARS,
    build_prompt,
    parse_questions,
    passage_language,
)

ZH = "公司2019年的净利润为1.2亿元，同比增长15%，主要来自海外业务的扩张。"
EN = "The company's net income in 2019 was 1.2 billion dollars, mostly from overseas sales."


def test_chinese_passage_gets_a_chinese_instruction() -> None:
    prompt = build_prompt(ZH, 3)
    assert passage_language(ZH) == "zh"
    assert "写出3个" in prompt and "问题用中文" in prompt
    assert "Write" not in prompt and "questions" not in prompt
    assert prompt.endswith(ZH)


def test_english_passage_gets_an_english_instruction() -> None:
    prompt = build_prompt(EN, 2)
    assert passage_language(EN) == "en"
    assert "write 2 different questions" in prompt
    assert "same language as the passage" in prompt
    assert prompt.endswith(EN)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("BMI指数是衡量体重是否健康的指标，WHO建议成人BMI保持在18.5到24之间。", "zh"),
        ("The patient was referred to Dr. 王 for a second opinion on the scan.", "en"),
        ("日本の首都は東京です。", "en"),  # kana: Japanese, not Chinese
        ("", "en"),
    ],
)
def test_passage_language(text: str, language: str) -> None:
    assert passage_language(text) == language


def test_domain_hint_is_named_in_both_languages() -> None:
    assert "in the domain of corporate finance" in build_prompt(EN, 3, "corporate  finance")
    assert "领域：医学" in build_prompt(ZH, 3, "医学")
    assert "domain" not in build_prompt(EN, 3)


def test_long_passage_is_cut() -> None:
    prompt = build_prompt("word " * 5000, 3)
    assert len(prompt) < MAX_PASSAGE_CHARS + 1000


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_bad_n_is_refused(n: object) -> None:
    with pytest.raises(ValueError, match="questions per passage"):
        build_prompt(EN, n)  # type: ignore[arg-type]


def test_numbered_lines_are_parsed_and_extra_dropped() -> None:
    prompt = build_prompt(EN, 2)
    reply = (
        "Here are the questions:\n1. How much did the company earn in 2019?\n"
        "2) Where did most of the income come from?\n- What drove growth abroad last year?"
    )
    parsed = parse_questions(reply, prompt=prompt, n=2)
    assert parsed.questions == [
        "How much did the company earn in 2019?",
        "Where did most of the income come from?",
    ]
    assert parsed.dropped == {"extra": 1}


def test_copies_of_the_passage_or_prompt_are_dropped() -> None:
    prompt = build_prompt(EN, 3)
    reply = (
        "The company's net income in 2019 was 1.2 billion dollars?\n"  # the passage, as a question
        "Net income in 2019 was 1.2 billion dollars, mostly from overseas sales, right?\n"
        "Reply with the 3 questions only, one per line\n"  # echoed instruction
        "What was the net income of the company in 2019?"  # a real question sharing a phrase
    )
    parsed = parse_questions(reply, prompt=prompt, n=3)
    assert parsed.questions == ["What was the net income of the company in 2019?"]
    assert parsed.dropped == {"copy": 3}


def test_chinese_reply() -> None:
    prompt = build_prompt(ZH, 3)
    reply = (
        "1、公司2019年的净利润是多少？\n问题2：净利润同比增长了多少？\n公司2019年的净利润为1.2亿元"
    )
    parsed = parse_questions(reply, prompt=prompt, n=3)
    assert parsed.questions == ["公司2019年的净利润是多少？", "净利润同比增长了多少？"]
    assert parsed.dropped == {"copy": 1}


def test_short_long_and_duplicate_questions_are_dropped() -> None:
    reply = (
        "Why?\n" + "What " * 100 + "?\nHow is revenue defined here?\nhow is revenue defined here"
    )
    parsed = parse_questions(reply, prompt="x", n=5)
    assert parsed.questions == ["How is revenue defined here?"]
    assert parsed.dropped == {"too_short": 1, "too_long": 1, "duplicate": 1}


@pytest.mark.parametrize(
    "reply",
    [
        '["What was the net income in 2019?", "Where does income come from?"]',
        '```json\n{"questions": ["What was the net income in 2019?", '
        '"Where does income come from?"]}\n```',
        'Sure!\n```\n["What was the net income in 2019?", "Where does income come from?"]\n```',
    ],
)
def test_json_replies_are_read(reply: str) -> None:
    parsed = parse_questions(reply, prompt="x", n=3)
    assert parsed.questions == ["What was the net income in 2019?", "Where does income come from?"]
    assert parsed.dropped == {}


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty_reply"),
        ("  \n ", "empty_reply"),
        (None, "empty_reply"),
        ('["What was the net income', "unparseable_reply"),
        ('{"answer": 3}', "unparseable_reply"),
        ("Here are three questions:", "unparseable_reply"),
    ],
)
def test_empty_and_unparseable_replies_are_counted(reply: str | None, reason: str) -> None:
    parsed = parse_questions(reply, prompt="x", n=3)
    assert parsed.questions == []
    assert parsed.dropped == {reason: 1}


def test_reasoning_models_thinking_is_not_parsed_as_questions() -> None:
    reply = (
        "<think>\nThe passage is about income. I should ask how much was earned.\n</think>\n\n"
        "How much did the company earn in 2019?"
    )
    parsed = parse_questions(reply, prompt=build_prompt(EN, 3), n=3)
    assert parsed.questions == ["How much did the company earn in 2019?"]
    assert parsed.dropped == {}
    cut_off = parse_questions("<think>\nLet me think about what users ask", prompt="x", n=3)
    assert cut_off.questions == [] and cut_off.dropped == {"empty_reply": 1}


@pytest.mark.parametrize(
    "line",
    [
        "Question 1: How much did the company earn in 2019?",
        "Q2) How much did the company earn in 2019?",
        "**1.** How much did the company earn in 2019?",
        "- **How much did the company earn in 2019?**",
        "### 3. How much did the company earn in 2019?",
        '(4) "How much did the company earn in 2019?"',
    ],
)
def test_list_marks_and_markdown_are_stripped(line: str) -> None:
    parsed = parse_questions(line, prompt="x", n=3)
    assert parsed.questions == ["How much did the company earn in 2019?"]


def test_numbers_that_start_a_question_are_kept() -> None:
    parsed = parse_questions("3.5% of revenue went where in 2019?", prompt="x", n=3)
    assert parsed.questions == ["3.5% of revenue went where in 2019?"]
