"""Pseudo-queries made from a corpus alone (no LLM), for domain adaptation without labels.

Strategies (each returns :class:`~simcse_rag.pairs.TrainingPair` objects whose positive is a
corpus passage):

* ``title``: the passage title is the query, the body the positive (MedQuAD-style question
  titles, headings of manuals).
* ``ict``: Inverse Cloze Task (Lee, Chang & Toutanova 2019, https://arxiv.org/abs/1906.00300):
  one sentence is the query and the rest of the passage the positive.
* ``crop``: independent random crops, as in Contriever (Izacard et al. 2021,
  https://arxiv.org/abs/2112.09118): a short span is the query, another span of the same
  passage the positive.
* ``auto``: ``title`` when most passages carry a title, otherwise ``ict``.

Sentences are split on ``.!?`` followed by a space, on ``。！？；`` (Chinese) and on line breaks.
Everything is deterministic for a given seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from simcse_rag.pairs import TrainingPair
from simcse_rag.schema import Passage

STRATEGIES = ("auto", "title", "ict", "crop")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[。！？；])|\n+")
_CJK = re.compile(r"[\u3400-\u9fff]")
#: Query-id prefix of every pseudo-query pair (``pq:<passage id>``).
PSEUDO_QUERY_PREFIX = "pq:"
#: Shortest query kept, in :func:`query_length` units; shorter sentences are poor queries.
MIN_QUERY_CHARS = 12


def query_length(text: str) -> int:
    """Length in "Latin-character equivalents": a CJK character counts 3.

    One Chinese character carries about as much as a short English word, so a plain character
    count would drop most Chinese titles and sentences ("儿童发烧怎么办" is 7 characters) while
    keeping English ones of the same content.
    """
    return len(text) + 2 * len(_CJK.findall(text))


def split_sentences(text: str) -> list[str]:
    """Split text into sentences (English and Chinese punctuation, line breaks)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def passage_title(passage: Passage) -> tuple[str, str]:
    """Return ``(title, body)``: the title from ``metadata['title']`` and the text without it."""
    title = str(passage.metadata.get("title") or "").strip()
    body = passage.text
    if title and body.startswith(title):
        body = body[len(title) :].lstrip()
    return title, body


def choose_strategy(passages: Sequence[Passage]) -> str:
    """``title`` when at least half the passages have a title, else ``ict``."""
    titled = sum(1 for p in passages if passage_title(p)[0])
    return "title" if passages and titled * 2 >= len(passages) else "ict"


def make_pseudo_queries(
    passages: Sequence[Passage],
    *,
    strategy: str = "auto",
    max_pairs: int | None = None,
    seed: int = 0,
) -> list[TrainingPair]:
    """Make (pseudo-query, passage) pairs from a corpus.

    Args:
        passages: The corpus.
        strategy: One of :data:`STRATEGIES`.
        max_pairs: Keep at most this many pairs (a seeded sample of passages); ``None``: one per
            usable passage.
        seed: Seed for sampling passages, sentences and crops.

    Returns:
        Pairs whose ``positive_id`` is the source passage; passages too short for the strategy
        are skipped.

    Raises:
        ValueError: Unknown strategy, or no passage yields a pair.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown pseudo-query strategy {strategy!r}; choose from {STRATEGIES}.")
    if strategy == "auto":
        strategy = choose_strategy(passages)
    rng = random.Random(seed)
    order = list(range(len(passages)))
    rng.shuffle(order)
    make = {"title": _title_pair, "ict": _ict_pair, "crop": _crop_pair}[strategy]
    pairs: list[TrainingPair] = []
    for i in order:
        pair = make(passages[i], rng)
        if pair is not None:
            pairs.append(pair)
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
    if not pairs:
        raise ValueError(
            f"No passage yields a '{strategy}' pseudo-query (passages too short or untitled); "
            "try another strategy or give labelled pairs (--pairs / --train-data)."
        )
    return pairs


def _pair(passage: Passage, query: str, positive: str) -> TrainingPair | None:
    query, positive = query.strip(), positive.strip()
    if query_length(query) < MIN_QUERY_CHARS or query_length(positive) < MIN_QUERY_CHARS:
        return None
    return TrainingPair(f"{PSEUDO_QUERY_PREFIX}{passage.id}", query, positive, passage.id)


def is_pseudo_query(pair: TrainingPair) -> bool:
    """Whether ``pair`` was made by :func:`make_pseudo_queries` (its positive is a body)."""
    return pair.query_id.startswith(PSEUDO_QUERY_PREFIX)


def _title_pair(passage: Passage, rng: random.Random) -> TrainingPair | None:
    title, body = passage_title(passage)
    return _pair(passage, title, body) if title else None


def _ict_pair(passage: Passage, rng: random.Random) -> TrainingPair | None:
    _, body = passage_title(passage)
    sentences = split_sentences(body)
    usable = [i for i, s in enumerate(sentences) if query_length(s) >= MIN_QUERY_CHARS]
    if len(sentences) < 2 or not usable:
        return None
    pick = rng.choice(usable)
    rest = " ".join(s for i, s in enumerate(sentences) if i != pick)
    return _pair(passage, sentences[pick], rest)


def _tokens(text: str) -> tuple[list[str], str]:
    """Words, or characters for Chinese text; with the joiner that rebuilds text from them."""
    if len(_CJK.findall(text)) * 3 > len(text):
        return [c for c in text if not c.isspace()], ""
    return text.split(), " "


def _crop_pair(passage: Passage, rng: random.Random) -> TrainingPair | None:
    _, body = passage_title(passage)
    tokens, joiner = _tokens(body)
    n = len(tokens)
    if n < 8:
        return None

    def crop(low: float, high: float) -> str:
        length = max(4, int(n * rng.uniform(low, high)))
        start = rng.randrange(0, n - length + 1)
        return joiner.join(tokens[start : start + length])

    # Contriever samples both crops at 10-50% of the document; the query side is kept short
    # (at most 32 tokens) so it looks like a query rather than a second passage.
    query = crop(0.1, 0.5)
    query = joiner.join(_tokens(query)[0][:32])
    return _pair(passage, query, crop(0.1, 0.5))
