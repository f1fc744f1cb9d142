"""AdaptConfig: integer settings checked in one place and stored as plain ints; the pass cap."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simcse_rag.adapt_config import MAX_PASSES, AdaptConfig


def test_numpy_integers_are_accepted_and_stored_as_plain_ints() -> None:
    config = AdaptConfig(max_steps=np.int64(5), batch_size=np.int32(8), ks=[np.int64(10)])
    assert type(config.max_steps) is int and type(config.batch_size) is int
    assert config.ks == (10,) and type(config.ks[0]) is int
    assert json.loads(json.dumps(config.to_dict()))["ks"] == [10]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ks": (True,)}, "ks must be positive integers"),
        ({"encode_max_length": True}, "encode_max_length must be a positive integer or None"),
        ({"rounds": 0}, "AdaptConfig.rounds must be a positive integer, got 0"),
        ({"batch_size": 1}, "AdaptConfig.batch_size must be an integer >= 2, got 1"),
    ],
)
def test_bad_integers_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AdaptConfig(**kwargs)


def test_a_handful_of_pairs_is_not_trained_for_max_steps() -> None:
    config = AdaptConfig()  # 100 steps of 32
    assert config.steps_for(5) == MAX_PASSES  # a batch of 5: one pass per step
    assert config.steps_for(64) == min(100, -(-MAX_PASSES * 64 // 32))
    # Pair sets the defaults were measured on keep every step.
    assert config.steps_for(296) == config.steps_for(490) == config.steps_for(4000) == 100
    assert AdaptConfig(max_passes=None).steps_for(5) == 100
    assert AdaptConfig(max_passes=0.01).steps_for(5) == 1


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), True])
def test_max_passes_is_validated(bad: float) -> None:
    with pytest.raises(ValueError, match="max_passes"):
        AdaptConfig(max_passes=bad)
