"""SimCSE's contrastive objective: InfoNCE over cosine similarities with a temperature.

Gao, Yao & Chen (2021), "SimCSE: Simple Contrastive Learning of Sentence Embeddings",
EMNLP 2021, https://arxiv.org/abs/2104.08821 (equations 1 and 5; reference code
princeton-nlp/SimCSE ``simcse/models.py::cl_forward``).

For a batch of ``B`` anchors ``h_i`` with positives ``h_i^+`` (and optional hard negatives
``h_j^-``), the loss of anchor ``i`` is::

    -log  exp(sim(h_i, h_i^+) / t)
          / ( sum_j exp(sim(h_i, h_j^+) / t) + sum_m exp(sim(h_i, h_m^-) / t + w * [owner(m) = i]) )

``sim`` is the cosine similarity and ``t`` the temperature (0.05 in the paper). Every other
positive of the batch, and every hard negative of every anchor, is a negative for anchor ``i``
("in-batch negatives"). ``w`` is SimCSE's ``hard_negative_weight``: it is added to the logits of an
anchor's *own* hard negatives (0 in the paper's main runs), exactly as in the reference code.

* Unsupervised SimCSE: anchors and positives are the same sentences encoded twice with dropout on.
* Supervised SimCSE: (premise, entailment, contradiction) triplets; pairs without hard negatives
  work too, and an anchor may own any number of hard negatives (``negative_owner``).
* ``symmetric=True`` adds the reverse direction (each positive must pick its own anchor among the
  batch's anchors) and averages the two, as in sentence-transformers'
  ``MultipleNegativesSymmetricRankingLoss``.

The maths is a pure function of embedding tensors, so it can be checked on hand-made tensors
without a model; the trainer computes the embeddings and calls it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def simcse_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    *,
    negative_owner: torch.Tensor | None = None,
    temperature: float = 0.05,
    hard_negative_weight: float = 0.0,
    symmetric: bool = False,
) -> torch.Tensor:
    """SimCSE InfoNCE loss (mean over anchors).

    Args:
        anchors: ``(B, d)`` anchor embeddings (not necessarily normalised).
        positives: ``(B, d)`` positive embeddings; row ``i`` is the positive of anchor ``i``.
        negatives: Hard negatives, either ``(B, K, d)`` (``K`` per anchor) or ``(M, d)`` with
            ``negative_owner``; ``None`` or ``M == 0`` for pairs only.
        negative_owner: ``(M,)`` long tensor: index of the anchor that owns each row of a 2-D
            ``negatives`` (any count per anchor, zero included). Needed for 2-D ``negatives``
            unless ``M`` is a multiple of ``B`` (then rows are taken ``M // B`` per anchor, in
            anchor order).
        temperature: Softmax temperature ``t`` (> 0).
        hard_negative_weight: Added to the logits of each anchor's own hard negatives.
        symmetric: Also score positives against anchors and average both directions.

    Returns:
        Scalar loss tensor (differentiable w.r.t. all inputs).

    Raises:
        ValueError: Shapes disagree, or ``temperature`` is not positive.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}.")
    if anchors.dim() != 2 or anchors.shape != positives.shape:
        raise ValueError(
            f"anchors and positives must both be (B, d); got {tuple(anchors.shape)} and "
            f"{tuple(positives.shape)}."
        )
    batch = anchors.shape[0]
    negatives, negative_owner = _flatten_negatives(negatives, negative_owner, anchors)

    a = F.normalize(anchors.float(), dim=-1)
    p = F.normalize(positives.float(), dim=-1)
    logits = a @ p.T / temperature  # (B, B): column j = positive of anchor j
    if negatives is not None:
        n = F.normalize(negatives.float(), dim=-1)
        neg_logits = a @ n.T / temperature  # (B, M)
        if hard_negative_weight:
            own = negative_owner.unsqueeze(0) == torch.arange(batch, device=a.device).unsqueeze(1)
            neg_logits = neg_logits + hard_negative_weight * own.to(neg_logits.dtype)
        logits = torch.cat([logits, neg_logits], dim=1)
    labels = torch.arange(batch, device=a.device)
    loss = F.cross_entropy(logits, labels)
    if symmetric:
        backward = p @ a.T / temperature  # positive i must find anchor i among anchors
        loss = (loss + F.cross_entropy(backward, labels)) / 2
    return loss


def _flatten_negatives(
    negatives: torch.Tensor | None,
    owner: torch.Tensor | None,
    anchors: torch.Tensor,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Return ``(M, d)`` negatives and their ``(M,)`` owners, or ``(None, None)``."""
    if negatives is None or negatives.numel() == 0:
        return None, None
    batch, dim = anchors.shape
    device = anchors.device
    if negatives.dim() == 3:
        if negatives.shape[0] != batch or negatives.shape[2] != dim:
            raise ValueError(
                f"3-D negatives must be (B={batch}, K, d={dim}); got {tuple(negatives.shape)}."
            )
        per = negatives.shape[1]
        owner = torch.arange(batch, device=device).repeat_interleave(per)
        return negatives.reshape(batch * per, dim), owner
    if negatives.dim() != 2 or negatives.shape[1] != dim:
        raise ValueError(
            f"negatives must be (M, d={dim}) or (B, K, d); got {tuple(negatives.shape)}."
        )
    if owner is None:
        if negatives.shape[0] % batch:
            raise ValueError(
                f"{negatives.shape[0]} negatives for {batch} anchors: pass negative_owner to say "
                "which anchor owns each negative."
            )
        per = negatives.shape[0] // batch
        owner = torch.arange(batch, device=device).repeat_interleave(per)
    owner = owner.to(device=device, dtype=torch.long)
    if owner.shape != (negatives.shape[0],):
        raise ValueError(
            f"negative_owner must have shape ({negatives.shape[0]},); got {tuple(owner.shape)}."
        )
    if owner.numel() and (int(owner.min()) < 0 or int(owner.max()) >= batch):
        raise ValueError(f"negative_owner values must lie in [0, {batch}).")
    return negatives, owner
