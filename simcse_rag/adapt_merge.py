"""Weight merging of a fine-tuned model with its base (WiSE-FT, Wortsman et al. 2022).

Fine-tuning on pseudo-queries teaches the model the corpus' terms but also pulls it away from
what it knew; averaging the weights keeps much of both (https://arxiv.org/abs/2109.01903). The
merge weights adaptation uses were chosen on held-out questions (docs/benchmarks.md, "Domain
adaptation").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simcse_rag.encoder import SimCSEEncoder


def base_weights(encoder: SimCSEEncoder) -> dict[str, Any]:
    """A CPU copy of the encoder's floating-point weights (for :func:`merge_with_base`)."""
    return {
        k: v.detach().to("cpu", copy=True)
        for k, v in encoder.model.state_dict().items()
        if v.is_floating_point()
    }


def merge_with_base(encoder: SimCSEEncoder, base: Mapping[str, Any], weight: float) -> None:
    """Move the encoder's weights to ``base + weight * (current - base)``, in place.

    Args:
        encoder: The fine-tuned encoder.
        base: Its weights before fine-tuning (:func:`base_weights`).
        weight: Share of the fine-tuned weights kept; ``1.0`` leaves the encoder as it is.
    """
    import torch

    with torch.no_grad():
        for name, tensor in encoder.model.state_dict().items():
            if name in base:
                tensor.copy_(torch.lerp(base[name].to(tensor.device), tensor, weight))


def restore_weights(encoder: SimCSEEncoder, saved: Mapping[str, Any]) -> None:
    """Put the encoder's floating-point weights back to ``saved`` (:func:`base_weights`), in
    place, exactly (a merge at weight 0 would also carry a NaN of the trained weights)."""
    import torch

    with torch.no_grad():
        for name, tensor in encoder.model.state_dict().items():
            if name in saved:
                tensor.copy_(saved[name].to(tensor.device))
