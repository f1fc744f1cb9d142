"""Property-based tests (hypothesis): tokenizers and reciprocal rank fusion.

Each property runs twice: a quick pass in the default suite and a deep pass marked ``slow``
(``pytest -m slow tests/unit/test_fuzz_text.py``). Only the documented exceptions may escape.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcse_rag.index.fusion import reciprocal_rank_fusion
from simcse_rag.index.tokenizers import TOKENIZERS, tokenize

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEEP = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that mixes scripts, whitespace, control characters, emoji and (rarely) very long runs.
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
texts = st.one_of(
    st.text(),
    st.text(alphabet=st.one_of(CJK, st.sampled_from(" ，。abc\t\n\x00🙂")), max_size=200),
    st.builds(lambda w, n: (w + " ") * n, st.text(min_size=1, max_size=12), st.integers(1, 3000)),
)


# ----------------------------------------------------------------------------- tokenizers
def check_tokenize(text: str, name: str) -> None:
    tokens = tokenize(text, name)
    assert isinstance(tokens, list)
    assert all(isinstance(t, str) and t and not t.isspace() for t in tokens)
    assert tokenize(text, name) == tokens  # deterministic
    if not text.strip():
        assert tokens == []


@FAST
@given(texts, st.sampled_from(TOKENIZERS))
def test_tokenizers_total_and_deterministic(text, name):
    check_tokenize(text, name)


@pytest.mark.slow
@DEEP
@given(texts, st.sampled_from(TOKENIZERS))
def test_tokenizers_total_and_deterministic_deep(text, name):
    check_tokenize(text, name)


@FAST
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())), st.text(max_size=5))
def test_tokenize_rejects_non_text_with_documented_errors(value, name):
    with pytest.raises((TypeError, ValueError)):
        tokenize(value, name if name not in TOKENIZERS else "nope")


# ----------------------------------------------------------------------------- fusion
ids = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
rankings = st.dictionaries(
    st.sampled_from(["dense", "bm25", "other"]),
    st.lists(st.tuples(ids, st.floats(allow_nan=False, allow_infinity=False)), max_size=30),
    max_size=3,
)
weights = st.none() | st.dictionaries(
    st.sampled_from(["dense", "bm25", "other"]), st.floats(0, 10, allow_nan=False), max_size=3
)


def check_fusion(ranks, w, k, limit) -> None:
    w = {n: x for n, x in (w or {}).items() if n in ranks} or None
    hits = reciprocal_rank_fusion(ranks, k=k, weights=w, limit=limit)
    # Reference: first-occurrence 1-based rank per source, score = sum w / (k + rank).
    expected: dict[str, float] = {}
    for name, ranking in ranks.items():
        firsts = list(dict.fromkeys(d for d, _ in ranking))
        for r, d in enumerate(firsts, start=1):
            expected[d] = expected.get(d, 0.0) + (w or {}).get(name, 1.0) / (k + r)
    want_n = len(expected) if limit is None else min(limit, len(expected))
    assert len(hits) == want_n
    assert [h.rank for h in hits] == list(range(1, want_n + 1))
    assert len({h.id for h in hits}) == want_n
    for h in hits:
        assert math.isclose(h.score, expected[h.id], rel_tol=1e-9, abs_tol=1e-12)
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
    # Every better-scored id is listed before any omitted one.
    if hits and limit is not None:
        floor = hits[-1].score
        assert all(s <= floor + 1e-12 for d, s in expected.items() if d not in {h.id for h in hits})
    # Order of the sources in the mapping does not matter.
    again = reciprocal_rank_fusion(dict(reversed(list(ranks.items()))), k=k, weights=w, limit=limit)
    assert [h.id for h in again] == [h.id for h in hits]


@FAST
@given(rankings, weights, st.floats(0, 1000, allow_nan=False), st.none() | st.integers(1, 40))
def test_fusion_matches_reference(ranks, w, k, limit):
    check_fusion(ranks, w, k, limit)


@pytest.mark.slow
@DEEP
@given(rankings, weights, st.floats(0, 1000, allow_nan=False), st.none() | st.integers(1, 40))
def test_fusion_matches_reference_deep(ranks, w, k, limit):
    check_fusion(ranks, w, k, limit)


junk = st.one_of(
    st.none(),
    st.integers(),
    st.text(),
    st.floats(),
    st.lists(st.one_of(st.none(), st.text(), st.tuples(st.integers(), st.floats()))),
)


@FAST
@given(
    st.one_of(junk, st.dictionaries(st.text(max_size=3), junk, max_size=3)),
    st.one_of(st.none(), junk, st.dictionaries(st.text(max_size=3), junk, max_size=2)),
    st.one_of(st.floats(), st.integers(-5, 5), st.text(max_size=2)),
    st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=2)),
)
def test_fusion_bad_input_raises_only_documented_errors(ranks, w, k, limit):
    try:
        hits = reciprocal_rank_fusion(ranks, k=k, weights=w, limit=limit)
    except (TypeError, ValueError):
        return
    assert all(h.id and isinstance(h.id, str) for h in hits)
