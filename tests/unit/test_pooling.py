from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from simcse_rag.pooling import POOLING_MODES, pool, validate_pooling


def _outputs():
    torch.manual_seed(0)
    hidden = tuple(torch.randn(2, 4, 3) for _ in range(3))  # embeddings + 2 layers
    return SimpleNamespace(
        last_hidden_state=hidden[-1], pooler_output=torch.randn(2, 3), hidden_states=hidden
    )


def test_unknown_mode_lists_valid_modes():
    with pytest.raises(ValueError, match="cls_before_pooler.*first_last_avg.*last2avg.*mean"):
        validate_pooling("max")


def test_mean_ignores_padding():
    out = _outputs()
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    got = pool("mean", out, mask)
    assert torch.allclose(got[0], out.last_hidden_state[0, :2].mean(0))
    assert torch.allclose(got[1], out.last_hidden_state[1].mean(0))


def test_cls_modes():
    out = _outputs()
    mask = torch.ones(2, 4)
    assert torch.equal(pool("cls", out, mask), out.pooler_output)
    assert torch.equal(pool("cls_before_pooler", out, mask), out.last_hidden_state[:, 0])


def test_layer_averages():
    out = _outputs()
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    h = out.hidden_states
    fl = pool("first_last_avg", out, mask)
    assert torch.allclose(fl[0], ((h[1][0, :3] + h[2][0, :3]) / 2).mean(0))
    l2 = pool("last2avg", out, mask)
    assert torch.allclose(l2[1], ((h[1][1] + h[2][1]) / 2).mean(0))


def test_cls_without_pooler_is_explained():
    out = SimpleNamespace(last_hidden_state=torch.randn(1, 2, 3), pooler_output=None)
    with pytest.raises(ValueError, match="cls_before_pooler"):
        pool("cls", out, torch.ones(1, 2))


def test_all_modes_registered():
    assert set(POOLING_MODES) == {"cls", "cls_before_pooler", "mean", "first_last_avg", "last2avg"}
