"""The shared argument checks: what they accept, what they refuse and how they say it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simcse_rag import _validate
from simcse_rag.schema import SEARCH_MODES


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_positive_int_accepts_integers(value: object) -> None:
    got = _validate.positive_int(value, "k")
    assert got == int(value) and type(got) is int


@pytest.mark.parametrize("value", [0, -1, True, 1.0, "3", None])
def test_positive_int_refuses_the_rest(value: object) -> None:
    with pytest.raises(ValueError, match=rf"^n must be a positive integer, got {value!r}\.$"):
        _validate.positive_int(value, "n")


def test_non_negative_checks() -> None:
    assert _validate.non_negative_int(0, "skip") == 0
    assert _validate.non_negative_number(0.5, "rrf_k") == 0.5
    for bad in (-1, True, math.nan, math.inf, "1"):
        with pytest.raises(ValueError, match="rrf_k must be a finite number >= 0"):
            _validate.non_negative_number(bad, "rrf_k")
    with pytest.raises(ValueError, match="skip must be an integer >= 0"):
        _validate.non_negative_int(-1, "skip")


def test_weights() -> None:
    assert _validate.check_weights({"dense": 2}, ("dense", "bm25")) == {"dense": 2.0}
    with pytest.raises(ValueError, match="weights must map 'dense' / 'bm25'"):
        _validate.check_weights({"sparse": 1}, ("dense", "bm25"))
    with pytest.raises(ValueError, match=r"weights\['bm25'\] must be a finite number"):
        _validate.check_weights({"bm25": -1}, ("dense", "bm25"))


def test_mode_and_k() -> None:
    assert [_validate.check_mode(m) for m in SEARCH_MODES] == list(SEARCH_MODES)
    with pytest.raises(ValueError, match="Unknown mode 'sparse'; choose one of: hybrid, dense"):
        _validate.check_mode("sparse")
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        _validate.check_k(0)


def test_string_lists() -> None:
    assert _validate.str_list(("a", ""), "texts", single="wrap it") == ["a", ""]
    with pytest.raises(TypeError, match="texts must be a sequence of strings; wrap it"):
        _validate.str_list("abc", "texts", single="wrap it")
    with pytest.raises(TypeError, match=r"texts\[1\] is int, expected str"):
        _validate.str_list(["a", 1], "texts", single="wrap it")
    assert _validate.str_ids(iter(["a", "b"])) == ["a", "b"]
    with pytest.raises(ValueError, match=r"ids\[0\] must be a non-empty string"):
        _validate.str_ids([""])
    with pytest.raises(TypeError, match="not a single string"):
        _validate.str_ids("abc")


def test_float_matrix() -> None:
    got = _validate.float_matrix([[1, 2]], 2)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    with pytest.raises(ValueError, match=r"must have shape \(n, 3\)"):
        _validate.float_matrix([[1, 2]], 3)
    with pytest.raises(ValueError, match="NaN or infinity"):
        _validate.float_matrix([[1, math.nan]], 2)
    with pytest.raises(TypeError, match="must be numeric"):
        _validate.float_matrix([["a", "b"]], 2)


def test_int_ranges() -> None:
    assert _validate.int_at_least(np.int64(2), "batch_size", 2) == 2
    with pytest.raises(ValueError, match=r"^batch_size must be an integer >= 2, got 1\.$"):
        _validate.int_at_least(1, "batch_size", 2)
    with pytest.raises(ValueError, match="got True"):
        _validate.int_at_least(True, "seed", 0)
    assert _validate.optional_positive_int(None, "nlist") is None
    got = _validate.optional_positive_int(np.int32(4), "nlist")
    assert got == 4 and type(got) is int
    with pytest.raises(ValueError, match=r"^nlist must be a positive integer or None, got 0\.$"):
        _validate.optional_positive_int(0, "nlist")


def test_positive_ints() -> None:
    got = _validate.positive_ints([10, np.int64(100)], "ks")
    assert got == (10, 100) and all(type(k) is int for k in got)
    for bad in ((), (10, 0), (True,), "10", 10):
        with pytest.raises(ValueError, match="ks must be positive integers"):
            _validate.positive_ints(bad, "ks")


def test_non_empty_texts() -> None:
    assert _validate.non_empty_texts(["a", "b"], "q", single="wrap it") == ("a", "b")
    with pytest.raises(TypeError, match="q must be a sequence of strings; wrap it"):
        _validate.non_empty_texts("ab", "q", single="wrap it")
    for bad in ([" "], [3]):
        with pytest.raises(ValueError, match=r"q\[0\] must be non-empty text"):
            _validate.non_empty_texts(bad, "q", single="wrap it")


def test_number_ranges() -> None:
    assert _validate.positive_number(np.float32(1.5), "k1") == 1.5
    for bad in (0, -1.0, True, math.nan, math.inf, "1"):
        with pytest.raises(ValueError, match="k1 must be a positive number"):
            _validate.positive_number(bad, "k1")
    assert _validate.number_between(1, "b", 0, 1) == 1.0
    for bad in (-0.1, 1.5, math.nan, False):
        with pytest.raises(ValueError, match=r"^b must be in \[0, 1\], got"):
            _validate.number_between(bad, "b", 0, 1)


def test_one_of() -> None:
    assert _validate.one_of("top", "sampling", ("top", "random")) == "top"
    with pytest.raises(
        ValueError, match=r"^sampling 'best' unknown; choose one of: top, random\.$"
    ):
        _validate.one_of("best", "sampling", ("top", "random"))
    with pytest.raises(ValueError, match="choose one of: faiss, milvus"):
        _validate.one_of(["faiss"], "dense backend", {"faiss": 1, "milvus": 2})


def test_weight_list() -> None:
    assert _validate.weight_list(None, 3, "retriever") == [1.0, 1.0, 1.0]
    got = _validate.weight_list([2, np.float32(0.5), 0], 3, "retriever")
    assert got == [2.0, 0.5, 0.0] and all(type(w) is float for w in got)
    with pytest.raises(ValueError, match=r"^Got 2 weights for 1 retrievers; pass one per"):
        _validate.weight_list([1.0, 2.0], 1, "retriever")
    for bad in (-1.0, True, math.nan, math.inf, "1"):
        with pytest.raises(ValueError, match=r"^weights\[1\] must be a finite number >= 0, got"):
            _validate.weight_list([1.0, bad], 2, "retriever")


def test_public_module_is_the_same_checks() -> None:
    from simcse_rag import validate

    for name in validate.__all__:
        assert getattr(validate, name) is getattr(_validate, name)
    with pytest.raises(ValueError, match=r"^similarity_top_k must be a positive integer"):
        validate.positive_int(0, "similarity_top_k")
