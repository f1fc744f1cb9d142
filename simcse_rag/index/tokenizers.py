"""Tokenizers for BM25: English (``en``), Chinese (``zh``, jieba) and mixed text (``auto``).

* ``en``: lowercase, Unicode word characters (``\\w+``), English stopwords dropped (bm25s' Lucene
  list), Snowball stemming (PyStemmer).
* ``zh``: jieba word segmentation; Chinese stopwords and punctuation dropped; Latin words inside
  Chinese text go through the ``en`` pipeline, so "BMI指数" and "bmi" match.
* ``auto``: per text: text with no CJK character takes the fast ``en`` path, anything else the
  ``zh`` path (which handles mixed Chinese/English).

jieba is imported lazily and only when a text holds CJK characters (its dictionary takes about a
second to load).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import lru_cache

logger = logging.getLogger(__name__)

#: Tokenizer names accepted by :func:`get_tokenizer`.
TOKENIZERS: tuple[str, ...] = ("auto", "en", "zh")

#: CJK Unified Ideographs (+ extension A, compatibility ideographs), kana and hangul: texts
#: holding any of these cannot be split on whitespace.
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    """bm25s' English (Lucene) stopword list."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@lru_cache(maxsize=1)
def chinese_stopwords() -> frozenset[str]:
    """bm25s' Chinese stopword list."""
    from bm25s.stopwords import STOPWORDS_CHINESE

    return frozenset(STOPWORDS_CHINESE)


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


def _normalise_words(words: list[str]) -> list[str]:
    """Lowercase, drop English stopwords and stem (words are already ``\\w+`` runs)."""
    stop = english_stopwords()
    kept = [w for w in (w.lower() for w in words) if w not in stop]
    return _stemmer().stemWords(kept) if kept else []


def tokenize_en(text: str) -> list[str]:
    """Tokenize English text: lowercase, ``\\w+`` words, no stopwords, Snowball stems."""
    return _normalise_words(_WORD.findall(text))


def tokenize_zh(text: str) -> list[str]:
    """Tokenize Chinese (or mixed) text with jieba; Latin words follow the ``en`` pipeline."""
    if not text:
        return []
    zh_stop = chinese_stopwords()
    tokens: list[str] = []
    for piece in load_jieba().lcut(text):
        if CJK.search(piece):
            if piece not in zh_stop:
                tokens.append(piece)
            continue
        words = _WORD.findall(piece)
        if words:
            tokens.extend(_normalise_words(words))
    return tokens


def tokenize_auto(text: str) -> list[str]:
    """Tokenize with ``zh`` when the text holds CJK characters, else with ``en``."""
    return tokenize_zh(text) if CJK.search(text) else tokenize_en(text)


_REGISTRY: dict[str, Callable[[str], list[str]]] = {
    "auto": tokenize_auto,
    "en": tokenize_en,
    "zh": tokenize_zh,
}


def get_tokenizer(name: str) -> Callable[[str], list[str]]:
    """Return the tokenizer function called ``name``.

    Raises:
        ValueError: Unknown name (the known ones are listed).
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown tokenizer {name!r}; choose one of: {', '.join(TOKENIZERS)}."
        ) from None


def tokenize(text: str, tokenizer: str = "auto") -> list[str]:
    """Tokenize one text with the named tokenizer."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize() takes a str, got {type(text).__name__}.")
    return get_tokenizer(tokenizer)(text)
