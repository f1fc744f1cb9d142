"""Pooling modes that turn token states into one sentence vector.

Modes follow SimCSE (Gao et al., 2021, https://arxiv.org/abs/2104.08821) and its reference code:

* ``cls``: the [CLS] state passed through the model's pooler (dense + tanh), the MLP head of SimCSE.
* ``cls_before_pooler``: the raw [CLS] state of the last layer.
* ``mean``: mean of the last layer's token states, padding masked out.
* ``first_last_avg``: mean over tokens of the average of the first and last layers' states.
* ``last2avg``: mean over tokens of the average of the last two layers' states.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

PoolingFn = Callable[[Any, torch.Tensor], torch.Tensor]


def _masked_mean(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    summed = (states * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return summed / counts


def _cls(outputs: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    pooled = getattr(outputs, "pooler_output", None)
    if pooled is None:
        raise ValueError(
            "pooling='cls' needs a model with a pooler layer; this model has none. "
            "Use pooling='cls_before_pooler' or 'mean'."
        )
    return pooled


def _cls_before_pooler(outputs: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    return outputs.last_hidden_state[:, 0]


def _mean(outputs: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    return _masked_mean(outputs.last_hidden_state, attention_mask)


def _first_last_avg(outputs: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    # hidden_states[0] is the embedding layer; SimCSE's "first" is the first transformer layer.
    hidden = outputs.hidden_states
    return _masked_mean((hidden[1] + hidden[-1]) / 2.0, attention_mask)


def _last2avg(outputs: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    hidden = outputs.hidden_states
    return _masked_mean((hidden[-1] + hidden[-2]) / 2.0, attention_mask)


POOLING_MODES: dict[str, PoolingFn] = {
    "cls": _cls,
    "cls_before_pooler": _cls_before_pooler,
    "mean": _mean,
    "first_last_avg": _first_last_avg,
    "last2avg": _last2avg,
}

#: Modes that need every layer's hidden states from the model.
NEEDS_HIDDEN_STATES = frozenset({"first_last_avg", "last2avg"})


def validate_pooling(mode: str) -> str:
    """Check a pooling mode name.

    Args:
        mode: Name of the pooling mode.

    Returns:
        The same name.

    Raises:
        ValueError: If the mode is unknown; the message lists the valid modes.
    """
    if mode not in POOLING_MODES:
        valid = ", ".join(sorted(POOLING_MODES))
        raise ValueError(f"Unknown pooling mode {mode!r}; choose one of: {valid}.")
    return mode


def pool(mode: str, outputs: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    """Pool a transformer's outputs into one vector per sequence.

    Args:
        mode: A key of :data:`POOLING_MODES`.
        outputs: The model output (``last_hidden_state``, ``pooler_output``, ``hidden_states``).
        attention_mask: ``(batch, seq)`` mask, 1 for real tokens.

    Returns:
        ``(batch, hidden)`` tensor.
    """
    return POOLING_MODES[validate_pooling(mode)](outputs, attention_mask)
