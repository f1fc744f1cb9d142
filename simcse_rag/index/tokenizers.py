"""Tokenizers for BM25: English (``en``), Chinese (``zh``, jieba) and mixed text (``auto``).

* ``en``: lowercase words by an :class:`EnglishRule`. Today's rule (version 2) drops single
  letters, lone digits and English stopwords (bm25s' longer, NLTK-style list), keeps numbers
  such as ``1,234.5`` whole and stems (Snowball, PyStemmer); version 1 kept every ``\\w+`` run
  and dropped only the short Lucene stopword list. The rule is versioned (:data:`TOKENIZER_VERSION`)
  because it decides what a saved BM25 index means.
* ``zh``: jieba word segmentation; Chinese stopwords and punctuation dropped; Latin words inside
  Chinese text go through the ``en`` rule, so "BMI指数" and "bmi" match.
* ``auto``: per text: text with no CJK character takes the fast ``en`` path, anything else the
  ``zh`` path (which handles mixed Chinese/English).

jieba is imported lazily and only when a text holds CJK characters (its dictionary takes about a
second to load).
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from simcse_rag import _validate

logger = logging.getLogger(__name__)

#: Tokenizer names accepted by :func:`get_tokenizer`.
TOKENIZERS: tuple[str, ...] = ("auto", "en", "zh")

#: CJK Unified Ideographs (+ extension A, compatibility ideographs), kana and hangul: texts
#: holding any of these cannot be split on whitespace.
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_WORD = re.compile(r"\w+", re.UNICODE)
# A number written with separators ("1,234.5", "3.2") as one match; any other word run after it.
_NUMBER_OR_WORD = re.compile(r"\d+(?:[.,]\d+)+|\w+", re.UNICODE)
_SEPARATED_NUMBER = re.compile(r"\d+(?:[.,]\d+)+")

NUMBER_RULES: tuple[str, ...] = ("split", "whole", "both")
STOPWORD_LISTS: tuple[str, ...] = ("lucene", "lucene_plus", "none")


@dataclass(frozen=True)
class EnglishRule:
    """How English (and Latin words inside Chinese text) become BM25 terms.

    Attributes:
        min_word_chars: Shortest kept word that is not all digits (2 drops single letters).
        lone_digits: Keep one-digit numbers ("3" in "Q3 2019" split as words, "3 months").
        numbers: ``split`` ("1,234.5" -> "1", "234", "5"), ``whole`` ("1234.5", thousands
            commas dropped so "1,234.5" and "1234.5" match) or ``both`` (whole and parts).
        stopwords: ``lucene`` (bm25s' English list), ``lucene_plus`` (bm25s' longer list) or
            ``none``.
        stem: Snowball (English) stemming.
    """

    min_word_chars: int = 1
    lone_digits: bool = True
    numbers: str = "split"
    stopwords: str = "lucene"
    stem: bool = True

    def __post_init__(self) -> None:
        _validate.one_of(self.numbers, "numbers", NUMBER_RULES)
        _validate.one_of(self.stopwords, "stopwords", STOPWORD_LISTS)
        if isinstance(self.min_word_chars, bool) or not isinstance(self.min_word_chars, int):
            raise TypeError(f"min_word_chars must be an int, got {self.min_word_chars!r}.")
        if self.min_word_chars < 1:
            raise ValueError(f"min_word_chars must be >= 1, got {self.min_word_chars}.")

    def __call__(self, text: str) -> list[str]:
        """Tokenize ``text`` by this rule (terms in text order)."""
        pattern = _WORD if self.numbers == "split" else _NUMBER_OR_WORD
        stop = _stopwords(self.stopwords)
        out: list[str] = []
        words: list[int] = []  # positions in ``out`` to stem, in one batch
        for raw in pattern.findall(text.lower()):
            if _SEPARATED_NUMBER.fullmatch(raw):
                out.append(raw.replace(",", ""))
                if self.numbers == "both":
                    out.extend(p for p in _WORD.findall(raw) if self._keep_digits(p))
            elif raw.isdigit():
                if self._keep_digits(raw):
                    out.append(raw)
            elif len(raw) >= self.min_word_chars and raw not in stop:
                words.append(len(out))
                out.append(raw)
        if self.stem and words:
            for pos, stem in zip(words, _stemmer().stemWords([out[i] for i in words]), strict=True):
                out[pos] = stem
        return out

    def _keep_digits(self, digits: str) -> bool:
        return self.lone_digits or len(digits) > 1


#: Tokenizer rule versions: a saved BM25 index records the version it was built with and is
#: searched with that rule. Version 2 keeps each change that gained on both shared English sets
#: (or lost within noise on one), Chinese unchanged; the stemmer stays, as the sets disagree on
#: it (``benchmarks/bm25_tokenization.py``, see docs/benchmarks.md).
TOKENIZER_RULES: dict[int, EnglishRule] = {
    1: EnglishRule(),
    2: EnglishRule(min_word_chars=2, lone_digits=False, numbers="whole", stopwords="lucene_plus"),
}
TOKENIZER_VERSION = 2


@lru_cache(maxsize=1)
def _bm25s_stopword_lists() -> Any:
    """bm25s' ``stopwords`` module, without running the ``bm25s`` package's ``__init__``.

    ``import bm25s.stopwords`` first imports the whole package (scipy among it), which a
    process that only searches a saved index never needs otherwise and which made its first
    query a few hundred milliseconds slower. The module itself is plain lists, so it is loaded
    from its file alone; the package import stays as the fallback.
    """
    if "bm25s.stopwords" in sys.modules:
        return sys.modules["bm25s.stopwords"]
    package = importlib.util.find_spec("bm25s")  # a top-level spec imports nothing
    origin = None if package is None or package.origin is None else Path(package.origin)
    spec = (
        None
        if origin is None
        else importlib.util.spec_from_file_location(
            "simcse_rag_bm25s_stopwords", origin.with_name("stopwords.py")
        )
    )
    if spec is None or spec.loader is None or not Path(spec.origin or "").is_file():
        import bm25s.stopwords

        return bm25s.stopwords
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    """bm25s' English (Lucene) stopword list."""
    return frozenset(_bm25s_stopword_lists().STOPWORDS_EN)


@lru_cache(maxsize=4)
def _stopwords(name: str) -> frozenset[str]:
    if name == "none":
        return frozenset()
    if name == "lucene_plus":
        return frozenset(_bm25s_stopword_lists().STOPWORDS_EN_PLUS)
    return english_stopwords()


@lru_cache(maxsize=1)
def chinese_stopwords() -> frozenset[str]:
    """bm25s' Chinese stopword list."""
    return frozenset(_bm25s_stopword_lists().STOPWORDS_CHINESE)


@lru_cache(maxsize=1)
def _stemmer():  # noqa: ANN202 - PyStemmer has no type stubs
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def load_jieba():  # noqa: ANN201 - jieba has no type stubs
    """The jieba module, initialised once, its logging quieted."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize_en(text: str, rule: EnglishRule | None = None) -> list[str]:
    """Tokenize English text by ``rule`` (default: the rule of :data:`TOKENIZER_VERSION`)."""
    return (rule or TOKENIZER_RULES[TOKENIZER_VERSION])(text)


def tokenize_zh_pieces(pieces: list[str], rule: EnglishRule | None = None) -> list[str]:
    """Terms from jieba's segmentation ``pieces``: CJK words kept unless stopwords, Latin pieces
    through the English ``rule`` (split out so a caller can segment once and try several rules).
    """
    rule = rule or TOKENIZER_RULES[TOKENIZER_VERSION]
    zh_stop = chinese_stopwords()
    # jieba cuts "1,234.5" into "1", ",", "234", ...: each run of Latin pieces is rejoined so the
    # number rule sees the number whole, as in English text.
    glue = " " if rule.numbers == "split" else ""
    tokens: list[str] = []
    run: list[str] = []
    for piece in pieces:
        if not CJK.search(piece):
            run.append(piece)
            continue
        if run:
            tokens.extend(rule(glue.join(run)))
            run = []
        if piece not in zh_stop:
            tokens.append(piece)
    if run:
        tokens.extend(rule(glue.join(run)))
    return tokens


def tokenize_zh(text: str, rule: EnglishRule | None = None) -> list[str]:
    """Tokenize Chinese (or mixed) text with jieba; Latin words follow the English ``rule``."""
    if not text:
        return []
    return tokenize_zh_pieces(load_jieba().lcut(text), rule)


def tokenize_auto(text: str, rule: EnglishRule | None = None) -> list[str]:
    """Tokenize with ``zh`` when the text holds CJK characters, else with ``en``."""
    return tokenize_zh(text, rule) if CJK.search(text) else tokenize_en(text, rule)


_REGISTRY: dict[str, Callable[..., list[str]]] = {
    "auto": tokenize_auto,
    "en": tokenize_en,
    "zh": tokenize_zh,
}


def get_tokenizer(name: str, version: int = TOKENIZER_VERSION) -> Callable[[str], list[str]]:
    """Return the tokenizer function called ``name`` with the rule of ``version``.

    Raises:
        ValueError: Unknown name or version (the known ones are listed).
    """
    try:
        fn = _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown tokenizer {name!r}; choose one of: {', '.join(TOKENIZERS)}."
        ) from None
    rule = TOKENIZER_RULES.get(version) if isinstance(version, int) else None
    if rule is None:
        raise ValueError(
            f"Unknown tokenizer version {version!r}; this simcse-rag knows versions "
            f"{sorted(TOKENIZER_RULES)}: upgrade simcse-rag, or rebuild the index with "
            "`simcse-rag index build`."
        )
    return fn if version == TOKENIZER_VERSION else partial(fn, rule=rule)


def tokenize(text: str, tokenizer: str = "auto") -> list[str]:
    """Tokenize one text with the named tokenizer."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize() takes a str, got {type(text).__name__}.")
    return get_tokenizer(tokenizer)(text)
