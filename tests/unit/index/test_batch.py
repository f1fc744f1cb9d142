"""The batch contract shared by the indexes: add() batch checks and result arrays."""

from __future__ import annotations

import numpy as np
import pytest

from simcse_rag.index.batch import check_add_batch, empty_results


def test_check_add_batch_accepts_one_item_per_unique_id():
    check_add_batch(["a", "b"], 2, "texts")
    check_add_batch([], 0, "vectors")


def test_check_add_batch_names_the_counts():
    with pytest.raises(ValueError, match=r"^Got 2 ids but 3 vectors; pass one per id\.$"):
        check_add_batch(["a", "b"], 3, "vectors")


def test_check_add_batch_names_the_first_repeated_id_in_order():
    with pytest.raises(ValueError, match=r"^Duplicate id 'a' in one add\(\) call"):
        check_add_batch(["a", "b", "b", "a"], 4, "texts")


@pytest.mark.parametrize(("m", "width"), [(0, 0), (2, 0), (0, 3), (2, 3)])
def test_empty_results_have_one_shape_and_fixed_dtypes(m, width):
    ids, scores = empty_results(m, width)
    assert ids.shape == scores.shape == (m, width)
    assert ids.dtype == object and scores.dtype == np.float32
    assert not scores.any()
