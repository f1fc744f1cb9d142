"""AdaptConfig: integer settings are checked in one place and stored as plain ints."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simcse_rag.adapt_config import AdaptConfig


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
