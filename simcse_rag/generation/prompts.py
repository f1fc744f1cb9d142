"""The question-writing prompt and the parsing of what an LLM replies to it.

:func:`build_prompt` asks for ``n`` questions a user could ask that a passage answers, one per
line, in the passage's language: a Chinese passage gets the instruction in Chinese (an English
instruction over a Chinese passage often gets English questions back, which no Chinese user
types), any other passage an English instruction that asks for the passage's own language.

:func:`parse_questions` turns a reply into questions and counts what it drops, by reason:
``empty_reply``, ``unparseable_reply`` (a broken JSON reply, or only a preamble),
``too_short``, ``too_long``, ``copy`` (the question is, or nearly is, a span of the prompt:
a sentence lifted from the passage or an echoed instruction), ``duplicate`` and ``extra``
(beyond the ``n`` asked for). The prompt's wording is versioned (:data:`PROMPT_VERSION`) because
the cache of replies (:mod:`simcse_rag.generation.cache`) is only valid for the prompt that
produced them.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field

from simcse_rag import _validate
from simcse_rag.index.tokenizers import CJK
from simcse_rag.pseudo_queries import MIN_QUERY_CHARS, query_length

#: Version of the prompt wording and reply parsing; part of every cache key.
PROMPT_VERSION = 1
#: Longest passage text put in a prompt (characters): bounds the cost of one request.
MAX_PASSAGE_CHARS = 4000
#: Longest kept question, in Latin-character equivalents (a CJK character counts 3).
MAX_QUESTION_CHARS = 300
#: A question whose longest span shared with the prompt covers this share of it is a copy.
#: Lower, and real questions that repeat a passage's subject phrase ("What was the net income of
#: the company in 2019?") would go too.
COPY_SHARE = 0.9
#: Drop reasons :func:`parse_questions` counts.
DROP_REASONS: tuple[str, ...] = (
    "empty_reply",
    "unparseable_reply",
    "too_short",
    "too_long",
    "copy",
    "duplicate",
    "extra",
)

# Han ideographs only: kana or hangul make a text Japanese or Korean, not Chinese.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\uac00-\ud7af]")
# Numbering and bullets models put before questions despite being asked not to.
_LIST_MARK = re.compile(
    r"^\s*(?:[-*•·]+\s*|\(?\d{1,2}\s*(?:[.)](?!\d)|[、:：])\s*"
    r"|(?i:q(?:uestion)?)\s*\d{0,2}\s*[.):：]\s*"
    r"|问题\s*\d{0,2}\s*[.:：、]\s*)"
)
# Reasoning models (qwen3, deepseek-r1 through Ollama) put their thinking in the reply; an
# unclosed block is thinking cut off by a token limit.
_THINKING = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL)
_FENCED = re.compile(r"```[\w-]*\s*(.*?)\s*```", re.DOTALL)
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)

_EN_TEMPLATE = """\
You write search questions for a retrieval system{domain}.
Read the passage below and write {n} different questions that a user could ask and that this \
passage answers.
Rules: write the questions in the same language as the passage; each question must make sense \
on its own, without the passage; do not copy sentences from the passage.
Reply with the {n} questions only, one per line, with no numbering and no other text.

Passage:
{passage}"""

_ZH_TEMPLATE = """\
你为一个检索系统编写搜索问题{domain}。
请阅读下面的段落，写出{n}个用户可能会提出、并且这段文字能够回答的不同问题。
要求：问题用中文书写；每个问题不看段落也能看懂；不要照抄段落中的句子。
只回复这{n}个问题，每行一个，不要编号，也不要任何其他内容。

段落：
{passage}"""


def passage_language(text: str) -> str:
    """``"zh"`` for mostly-Chinese text, else ``"en"`` (the instruction's language).

    Uses the BM25 tokenizers' CJK test first (most passages hold no CJK character at all);
    a text is Chinese when Han characters are more than a third of its letters, so a Chinese
    passage full of English terms stays Chinese and an English one quoting a name does not.
    """
    if not CJK.search(text) or _KANA_HANGUL.search(text):
        return "en"
    letters = sum(ch.isalpha() for ch in text)
    return "zh" if 3 * len(_HAN.findall(text)) > letters else "en"


def build_prompt(passage: str, n: int, domain: str | None = None) -> str:
    """The instruction asking for ``n`` questions that ``passage`` answers.

    Args:
        passage: Passage text (cut to :data:`MAX_PASSAGE_CHARS`).
        n: Questions asked for.
        domain: Optional hint such as ``"corporate finance"``, named in the instruction.
    """
    n = _validate.positive_int(n, "questions per passage")
    text = " ".join(passage.split())[:MAX_PASSAGE_CHARS]
    hint = " ".join((domain or "").split())
    if passage_language(text) == "zh":
        return _ZH_TEMPLATE.format(n=n, passage=text, domain=f"（领域：{hint}）" if hint else "")
    domain_clause = f" in the domain of {hint}" if hint else ""
    return _EN_TEMPLATE.format(n=n, passage=text, domain=domain_clause)


@dataclass(frozen=True)
class ParsedReply:
    """What :func:`parse_questions` found in a reply.

    Attributes:
        questions: Kept questions, in reply order, at most ``n``.
        dropped: Reason -> count of what was dropped (reasons in :data:`DROP_REASONS`).
    """

    questions: list[str]
    dropped: dict[str, int] = field(default_factory=dict)


def parse_questions(reply: str | None, *, prompt: str, n: int) -> ParsedReply:
    """Questions from an LLM reply to :func:`build_prompt`; the rest dropped and counted.

    Accepts one question per line (numbering, bullets, quotes, a code fence and a reasoning
    model's ``<think>`` block are stripped; a preamble line ending in a colon is skipped) or a
    JSON list of strings (or an object holding one under ``"questions"``), which some models
    send whatever they are asked.

    Args:
        reply: The model's text.
        prompt: The prompt it answered (copies of any part of it are dropped).
        n: Questions asked for (more are dropped as ``extra``).
    """
    reply = _THINKING.sub("", reply or "")
    if not reply.strip():
        return ParsedReply([], {"empty_reply": 1})
    lines = _candidate_lines(reply)
    if not lines:
        return ParsedReply([], {"unparseable_reply": 1})
    dropped: dict[str, int] = {}
    kept: list[str] = []
    seen: set[str] = set()
    source = _normalize(prompt)
    for line in lines:
        reason = _drop_reason(line, source, seen)
        if reason is None and len(kept) >= n:
            reason = "extra"
        if reason is None:
            kept.append(line)
            seen.add(_normalize(line))
        else:
            dropped[reason] = dropped.get(reason, 0) + 1
    return ParsedReply(kept, dropped)


def _candidate_lines(reply: str) -> list[str]:
    """The question-like lines of a reply; empty when it cannot be read."""
    fenced = _FENCED.search(reply)
    text = (fenced.group(1) if fenced else reply).strip()
    if text[:1] in "[{":
        items = _json_questions(text)
        if items is None:
            return []
    else:
        items = text.splitlines()
    lines = []
    for item in items:
        line = _LIST_MARK.sub("", " ".join(item.split()).lstrip("*#").strip(), count=1)
        line = line.strip().strip("*\"'“”‘’「」").strip()
        if line and not (line[-1] in ":：" and not re.search(r"[?？]", line)):
            lines.append(line)
    return lines


def _json_questions(text: str) -> list[str] | None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict):
        data = data.get("questions")
    if isinstance(data, list) and all(isinstance(item, str) for item in data):
        return data
    return None


def _drop_reason(question: str, source: str, seen: set[str]) -> str | None:
    length = query_length(question)
    if length < MIN_QUERY_CHARS:
        return "too_short"
    if length > MAX_QUESTION_CHARS:
        return "too_long"
    norm = _normalize(question)
    if norm in seen:
        return "duplicate"
    if _is_copy(norm, source):
        return "copy"
    return None


def _normalize(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


def _is_copy(question: str, source: str) -> bool:
    """Whether most of ``question`` is one contiguous span of ``source`` (both normalized)."""
    if question in source:
        return True
    # difflib rather than a substring test: a copied sentence with a word changed or a
    # question mark added is still a copy.
    matcher = difflib.SequenceMatcher(None, source, question, autojunk=False)
    match = matcher.find_longest_match(0, len(source), 0, len(question))
    return match.size >= COPY_SHARE * len(question)
