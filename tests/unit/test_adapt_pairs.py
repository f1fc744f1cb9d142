"""Training pairs of domain adaptation: the corpus-only refusal and the seeded sample."""

from __future__ import annotations

import re

import pytest

from simcse_rag.adapt_config import AdaptConfig
from simcse_rag.adapt_pairs import CORPUS_ONLY_REFUSAL, sample_pairs, training_pairs
from simcse_rag.pairs import TrainingPair
from tests.unit.test_adapt import synthetic_corpus


def test_corpus_only_refusal_gives_the_fix_not_scores() -> None:
    with pytest.raises(ValueError) as info:
        training_pairs(synthetic_corpus(10), AdaptConfig(), None)
    message = str(info.value)
    assert message == CORPUS_ONLY_REFUSAL
    assert "--pairs" in message and "--train-data" in message and "--eval-data" in message
    assert not re.search(r"\d", message), message  # measurements live in docs/benchmarks.md


def test_sample_pairs_is_seeded_and_keeps_order() -> None:
    pairs = [TrainingPair(f"q{i}", f"query {i}", f"text {i}", f"d{i}") for i in range(50)]
    assert sample_pairs(pairs, 50, seed=0) is pairs
    sample = sample_pairs(pairs, 10, seed=3)
    assert len(sample) == 10 and len(set(sample)) == 10
    assert sample == sorted(sample, key=pairs.index)  # the original order
    assert sample_pairs(pairs, 10, seed=3) == sample
    assert sample_pairs(pairs, 10, seed=4) != sample
