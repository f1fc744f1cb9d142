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
* ``keywords``: two to six salient words of the passage (weighted by tf-idf over the corpus,
  words in more than 20% of passages and numbers left out, kept in passage order) are the
  query, the body the positive. Real queries share their key terms with the passage that answers
  them (which is why BM25 works); this teaches the dense model those terms, as SPAR
  (Chen et al. 2022, https://arxiv.org/abs/2110.06918) teaches a dense model to imitate a
  lexical one.
* ``auto``: ``title`` when most passages carry a title, otherwise ``ict``.

:func:`pseudo_query_pairs` mixes ``title`` and ``ict`` (``crop`` when neither yields a pair), as
the demo does on a user's corpus.

Negatives must look like positives, or the model learns the difference in form instead of
relevance: :func:`negative_view` gives a passage the form its strategy gives positives.

Sentences are split on ``.!?`` followed by a space, on ``。！？；`` (Chinese) and on line breaks.
Everything is deterministic for a given seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from simcse_rag.pairs import TrainingPair
from simcse_rag.schema import Passage

STRATEGIES = ("auto", "title", "ict", "crop", "keywords")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[。！？；])|\n+")
_CJK = re.compile(r"[\u3400-\u9fff]")
#: Query-id prefix of every pseudo-query pair (``pq:<strategy>:<passage id>``).
PSEUDO_QUERY_PREFIX = "pq:"
#: Shortest query kept, in :func:`query_length` units; shorter sentences are poor queries.
MIN_QUERY_CHARS = 12
#: ``keywords``: words in more than this share of passages are never picked.
KEYWORD_MAX_DF = 0.2
#: ``keywords``: how many words a query gets (uniform in this range, as available).
KEYWORD_COUNT = (3, 6)


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
    make = {"title": _title_pair, "ict": _ict_pair, "crop": _crop_pair}.get(strategy)
    if make is None:  # keywords: needs corpus-wide document frequencies
        make = _keyword_maker(passages)
    pairs: list[TrainingPair] = []
    for i in order:
        made = make(passages[i], rng)
        pair = _pair(passages[i], strategy, *made) if made is not None else None
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


def pseudo_query_pairs(
    corpus: Sequence[Passage], *, seed: int = 0
) -> tuple[list[TrainingPair], str]:
    """Training pairs made from the corpus alone: passage titles (when most passages have one)
    plus one Inverse-Cloze sentence per passage; random crops when neither yields a pair.

    Two kinds of pseudo-query give a small corpus twice the pairs and cover passages whose
    title is too short to be kept. Duplicate query texts are dropped.

    Returns:
        The pairs and a description for the report.

    Raises:
        ValueError: No passage yields a pseudo-query.
    """
    wanted = ["title", "ict"] if choose_strategy(corpus) == "title" else ["ict"]
    pairs: dict[str, TrainingPair] = {}
    used: list[str] = []
    for strategy in [*wanted, "crop"]:
        if strategy == "crop" and pairs:
            break
        try:
            made = make_pseudo_queries(corpus, strategy=strategy, seed=seed)
        except ValueError:  # no passage suits this strategy (e.g. one-sentence lines for ict)
            continue
        used.append(strategy)
        for pair in made:
            pairs.setdefault(" ".join(pair.query.split()).lower(), pair)
    if not pairs:
        raise ValueError(
            "No passage of the corpus yields a pseudo-query (passages too short?); give longer "
            "passages or run the demo with --no-adapt."
        )
    return list(pairs.values()), f"pseudo-queries ({' + '.join(used)}) from the corpus"


def _pair(passage: Passage, strategy: str, query: str, positive: str) -> TrainingPair | None:
    """The pair ``strategy`` made from ``passage``, or ``None`` if either side is too short."""
    query, positive = query.strip(), positive.strip()
    if query_length(query) < MIN_QUERY_CHARS or query_length(positive) < MIN_QUERY_CHARS:
        return None
    query_id = f"{PSEUDO_QUERY_PREFIX}{strategy}:{passage.id}"
    return TrainingPair(query_id, query, positive, passage.id)


def is_pseudo_query(pair: TrainingPair) -> bool:
    """Whether ``pair`` was made by :func:`make_pseudo_queries` (its positive is a body)."""
    return pair.query_id.startswith(PSEUDO_QUERY_PREFIX)


def pseudo_query_strategy(pair: TrainingPair) -> str | None:
    """The strategy that made a pseudo-query pair (``None`` for other pairs)."""
    if not is_pseudo_query(pair):
        return None
    strategy = pair.query_id[len(PSEUDO_QUERY_PREFIX) :].split(":", 1)[0]
    return strategy if strategy in STRATEGIES else "title"


def negative_view(passage: Passage, strategy: str, rng: random.Random) -> str:
    """``passage`` in the form ``strategy`` gives its positives, for use as a negative.

    A negative that looks different from a positive gives the model a shortcut that has nothing
    to do with relevance. Measured on our benchmarks: whole passages as negatives against
    title-stripped positives cut LiveQA dense nDCG@10 from 70.4 to 41.2, and against short crops
    cut TAT-QA's from 44.2 to 14.5 ("a fragment is the answer"). So negatives get the same
    treatment: the body for ``title`` and ``keywords``, the body less one random sentence for
    ``ict``, a random crop of the body for ``crop``.
    """
    _, body = passage_title(passage)
    body = body or passage.text
    if strategy == "ict":
        sentences = split_sentences(body)
        if len(sentences) >= 2:
            drop = rng.randrange(len(sentences))
            return " ".join(s for i, s in enumerate(sentences) if i != drop)
    elif strategy == "crop":
        tokens, joiner = _tokens(body)
        if len(tokens) >= 8:
            return _crop(tokens, joiner, rng, 0.1, 0.5)
    return body


#: A pair maker: ``(passage, rng) -> (query, positive text)``, or ``None`` if unusable.
_Made = tuple[str, str] | None


def _title_pair(passage: Passage, rng: random.Random) -> _Made:
    title, body = passage_title(passage)
    return (title, body) if title else None


def _ict_pair(passage: Passage, rng: random.Random) -> _Made:
    _, body = passage_title(passage)
    sentences = split_sentences(body)
    usable = [i for i, s in enumerate(sentences) if query_length(s) >= MIN_QUERY_CHARS]
    if len(sentences) < 2 or not usable:
        return None
    pick = rng.choice(usable)
    rest = " ".join(s for i, s in enumerate(sentences) if i != pick)
    return sentences[pick], rest


def _tokens(text: str) -> tuple[list[str], str]:
    """Words, or characters for Chinese text; with the joiner that rebuilds text from them."""
    if len(_CJK.findall(text)) * 3 > len(text):
        return [c for c in text if not c.isspace()], ""
    return text.split(), " "


def _crop(tokens: list[str], joiner: str, rng: random.Random, low: float, high: float) -> str:
    n = len(tokens)
    length = max(4, int(n * rng.uniform(low, high)))
    start = rng.randrange(0, n - length + 1)
    return joiner.join(tokens[start : start + length])


def _crop_pair(passage: Passage, rng: random.Random) -> _Made:
    _, body = passage_title(passage)
    tokens, joiner = _tokens(body)
    if len(tokens) < 8:
        return None
    # Contriever samples both crops at 10-50% of the document; the query side is kept short
    # (at most 32 tokens) so it looks like a query rather than a second passage.
    query = _crop(tokens, joiner, rng, 0.1, 0.5)
    query = joiner.join(_tokens(query)[0][:32])
    return query, _crop(tokens, joiner, rng, 0.1, 0.5)


_LATIN_WORD = re.compile(r"[^\W\d_][\w\-']*", re.UNICODE)


def _surface_terms(text: str) -> list[str]:
    """Readable terms of a text: Latin words with a letter (no stopwords), jieba words for CJK."""
    from simcse_rag.index.tokenizers import CJK as ANY_CJK
    from simcse_rag.index.tokenizers import chinese_stopwords, english_stopwords, load_jieba

    if ANY_CJK.search(text):
        stop = chinese_stopwords()
        pieces = [w.strip() for w in load_jieba().lcut(text)]
        terms = []
        for w in pieces:
            if _CJK.search(w):
                if len(w) >= 2 and w not in stop:
                    terms.append(w)
            else:
                terms.extend(_LATIN_WORD.findall(w))
    else:
        terms = _LATIN_WORD.findall(text)
    en_stop = english_stopwords()
    return [t for t in terms if t.lower() not in en_stop and (len(t) > 2 or _CJK.search(t))]


def _keyword_maker(passages: Sequence[Passage]):  # noqa: ANN202 - returns a pair maker
    """A ``keywords`` pair maker with the corpus' document frequencies baked in."""
    import math
    from collections import Counter

    bodies = [passage_title(p)[1] or p.text for p in passages]
    terms = [_surface_terms(b) for b in bodies]
    df = Counter(k for ts in terms for k in {t.lower() for t in ts})
    n = max(1, len(passages))
    index = {p.id: i for i, p in enumerate(passages)}

    def make(passage: Passage, rng: random.Random) -> _Made:
        i = index[passage.id]
        first: dict[str, str] = {}
        tf: Counter[str] = Counter()
        for t in terms[i]:
            first.setdefault(t.lower(), t)
            tf[t.lower()] += 1
        cands = [k for k in first if df[k] <= max(2, KEYWORD_MAX_DF * n)]
        if len(cands) < 2:
            return None
        weights = [tf[k] * math.log(n / df[k]) + 1e-6 for k in cands]
        want = min(len(cands), rng.randint(*KEYWORD_COUNT))
        # Weighted sampling without replacement (Efraimidis & Spirakis): keep the largest keys.
        keys = [rng.random() ** (1.0 / w) for w in weights]
        # Keep the passage's word order (``cands`` follows it: dicts keep insertion order).
        picked = [cands[j] for j in sorted(sorted(range(len(cands)), key=keys.__getitem__)[-want:])]
        joiner = "" if all(_CJK.search(first[k]) for k in picked) else " "
        return joiner.join(first[k] for k in picked), bodies[i]

    return make
