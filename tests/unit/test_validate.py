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
