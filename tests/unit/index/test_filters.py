"""The metadata filter language: semantics, one-line errors, and the parser fuzzed with JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcse_rag.index.filters import Filter, FilterIdCache, parse_filter
from simcse_rag.schema import Passage

DOC = {"lang": "en", "year": 2021, "score": 0.5, "day": "2024-05-01", "public": True}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"lang": "en"}, True),
        ({"lang": "zh"}, False),
        ({"lang": ["zh", "en"]}, True),  # LangChain's list shorthand = $in
        ({"lang": "en", "year": 2020}, False),  # several keys: all must hold
        ({"year": {"$eq": 2021.0}}, True),  # numbers compare by value
        ({"year": {"$ne": 2020}}, True),
        ({"year": {"$in": [2020, 2021]}}, True),
        ({"year": {"$nin": [2020, 2021]}}, False),
        ({"year": {"$gt": 2021}}, False),
        ({"year": {"$gte": 2021, "$lt": 2022}}, True),
        ({"score": {"$lte": 0.5}}, True),
        ({"day": {"$gt": "2024-04-30"}}, True),
        ({"day": {"$lt": "2024-05-01T00:00:01Z"}}, True),  # a date is midnight UTC
        ({"day": {"$gte": "2024-05-01T02:00:00+02:00"}}, True),  # same instant, other zone
        ({"lang": {"$gt": 2020}}, False),  # a string is not a number: no match, no error
        ({"public": 1}, False),  # a boolean only equals a boolean
        ({"public": True}, True),
        ({"$or": [{"lang": "zh"}, {"year": 2021}]}, True),
        ({"$and": [{"lang": "en"}, {"$or": [{"year": 1}, {"score": {"$gt": 1}}]}]}, False),
        ({"lang": {"$exists": True}}, True),
        ({"owner": {"$exists": False}}, True),
    ],
)
def test_filter_semantics(spec, expected):
    assert parse_filter(spec).matches(DOC) is expected
    assert parse_filter(json.dumps(spec)).matches(DOC) is expected  # JSON text, as the CLI sends


@pytest.mark.parametrize(
    "spec",
    [
        {"owner": "x"},
        {"owner": {"$ne": "x"}},
        {"owner": {"$nin": ["x"]}},
        {"owner": {"$gt": 1}},
        {"owner": {"$lt": "2024-01-01"}},
        {"owner": {"$exists": True}},
    ],
)
def test_a_missing_key_never_matches(spec):
    assert not parse_filter(spec).matches(DOC)


@pytest.mark.parametrize(
    ("spec", "part"),
    [
        ({"year": {"$gt": "abc"}}, 'filter["year"]["$gt"]'),
        ({"year": {"$regex": "a"}}, 'filter["year"]["$regex"]'),
        ({"$not": {"a": 1}}, 'filter["$not"]'),
        ({"$or": []}, 'filter["$or"]'),
        ({"$and": [{"a": 1}, 3]}, 'filter["$and"][1]'),
        ({"a": {"$in": "x"}}, 'filter["a"]["$in"]'),
        ({"a": {"$in": [1, {"b": 2}]}}, 'filter["a"]["$in"][1]'),
        ({"a": {"$exists": 1}}, 'filter["a"]["$exists"]'),
        ({"a": None}, 'filter["a"]'),
        ({"a": {}}, 'filter["a"]'),
        ({"a": {"$gt": float("nan")}}, 'filter["a"]["$gt"]'),
        ({"a": {"$gt": True}}, 'filter["a"]["$gt"]'),
        ({}, "filter"),
        ([{"a": 1}], "filter"),
        ("{not json", "filter is not valid JSON"),
        ('"en"', "filter"),
    ],
)
def test_bad_filters_raise_one_line_naming_the_part(spec, part):
    with pytest.raises(ValueError) as info:
        parse_filter(spec)
    message = str(info.value)
    assert message.startswith(part)
    assert "\n" not in message


def test_deep_nesting_is_an_error_not_a_recursion_crash():
    deep: dict = {"a": 1}
    for _ in range(200):
        deep = {"$and": [deep]}
    with pytest.raises(ValueError, match="nests too deeply"):
        parse_filter(deep)
    with pytest.raises(ValueError, match="nests too deeply"):
        parse_filter("[" * 100_000)


def test_filter_ids_and_mask():
    passages = [Passage(f"p{i}", "t", {"n": i}) for i in range(5)]
    flt = parse_filter({"n": {"$gte": 3}})
    assert flt.ids(passages) == {"p3", "p4"}
    assert flt.mask(passages).tolist() == [False, False, False, True, True]
    assert parse_filter(flt) is flt
    assert parse_filter({"a": 1, "b": 2}).key == parse_filter({"b": 2, "a": 1}).key


def test_id_cache_recomputes_after_clear():
    cache = FilterIdCache(size=1)
    flt = parse_filter({"n": 1})
    assert cache.ids(flt, [Passage("a", "t", {"n": 1})]) == {"a"}
    assert cache.ids(flt, []) == {"a"}  # cached until the owner's next write
    cache.clear()
    assert cache.ids(flt, []) == frozenset()
    cache.ids(parse_filter({"n": 2}), [])  # size 1: the older entry is dropped
    assert cache.ids(flt, [Passage("b", "t", {"n": 1})]) == {"b"}


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_keys = st.sampled_from(["$eq", "$ne", "$in", "$nin", "$gt", "$lte", "$exists", "$and", "$or"])
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_keys | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(value=_json, metadata=st.dictionaries(st.sampled_from(["", "a", "$eq"]), _scalars))
def test_fuzzed_json_gives_a_filter_or_one_value_error(value, metadata):
    for obj in (value, json.dumps(value)):
        try:
            flt = parse_filter(obj)
        except ValueError as exc:
            assert "\n" not in str(exc)
            continue
        assert isinstance(flt, Filter)
        flt.matches(metadata)  # a parsed filter evaluates on any metadata without raising


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=30))
def test_fuzzed_text_gives_a_filter_or_one_value_error(text):
    try:
        parse_filter(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
