"""TrainingConfig: integer settings checked in one place, stored as plain ints, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simcse_rag.train_config import TrainingConfig


def test_numpy_integers_become_plain_ints_and_survive_json() -> None:
    config = TrainingConfig(max_steps=np.int64(7), batch_size=np.int32(4), seed=np.int64(3))
    assert type(config.max_steps) is int and type(config.batch_size) is int
    assert TrainingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": True}, r"^epochs must be an integer >= 1, got True\.$"),
        ({"seed": -1}, r"^seed must be an integer >= 0, got -1\.$"),
        ({"mini_batch_size": 0}, r"^mini_batch_size must be an integer >= 1, got 0\.$"),
        ({"mixed_precision": "fp8"}, r"^mixed_precision 'fp8' unknown; choose one of: auto, no"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainingConfig(**kwargs)
