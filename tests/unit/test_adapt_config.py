"""Adaptation settings: the cap on passes over a small pair set."""

from __future__ import annotations

import pytest

from simcse_rag.adapt_config import MAX_PASSES, AdaptConfig


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
