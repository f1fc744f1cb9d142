"""TrainingConfig: the hyper-parameters of a SimCSE run, saved as JSON with every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from simcse_rag import _validate
from simcse_rag.pooling import validate_pooling

_MIXED_PRECISION = ("auto", "no", "bf16", "fp16")


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of a SimCSE run (saved as JSON with every checkpoint).

    Attributes:
        epochs: Passes over the data (ignored when ``max_steps`` is set).
        max_steps: Total optimizer steps; overrides ``epochs`` (data is cycled as needed).
        batch_size: Examples per step; every other example's texts are in-batch negatives.
        learning_rate: Peak AdamW learning rate (SimCSE: 3e-5 unsup / 5e-5 sup for BERT-base).
        warmup_ratio: Fraction of steps of linear warm-up, then linear decay to 0.
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm).
        max_grad_norm: Gradient clipping norm (``0`` disables clipping).
        temperature: InfoNCE temperature (paper: 0.05; sentence-transformers' scale = 1 / t).
        hard_negative_weight: Added to the logits of an anchor's own hard negatives.
        symmetric: Also train positive -> anchor (see :func:`simcse_rag.losses.simcse_loss`).
        dropout: Dropout probability set on the model for training (the augmentation of
            unsupervised SimCSE; 0.1 in the paper); ``None`` keeps the model's own.
        pooling: Pooling to train and save with; ``None`` keeps the encoder's.
        mlp_only_train: Train with ``cls`` (MLP head = BERT pooler), save with
            ``cls_before_pooler``; ``None``: on for unsupervised data with ``cls`` pooling.
        max_length: Truncation length for training texts; ``None``: the encoder's. The saved
            model keeps the encoder's inference ``max_length``.
        mini_batch_size: Gradient caching (GradCache, Gao et al. 2021): embed the batch in
            chunks of this size without keeping activations, so a large batch of negatives fits
            in little memory; gives the same gradients as the full batch. ``None``: off.
        mixed_precision: ``auto`` (bf16/fp16 autocast on CUDA, off on CPU), ``no``, ``bf16``
            or ``fp16`` (CUDA only, with loss scaling).
        eval_steps: Evaluate every this many steps (and at the end) when ``eval_fn`` is given.
        checkpoint_steps: Write ``checkpoint-last`` every this many steps (and at the end).
        seed: Seed for shuffling, dropout and initialisation.
    """

    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 64
    learning_rate: float = 3e-5
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    temperature: float = 0.05
    hard_negative_weight: float = 0.0
    symmetric: bool = False
    dropout: float | None = 0.1
    pooling: str | None = None
    mlp_only_train: bool | None = None
    max_length: int | None = None
    mini_batch_size: int | None = None
    mixed_precision: str = "auto"
    eval_steps: int = 250
    checkpoint_steps: int = 250
    seed: int = 42

    def __post_init__(self) -> None:
        checked = {
            name: _validate.int_at_least(getattr(self, name), name, 1)
            for name in ("epochs", "batch_size", "eval_steps", "checkpoint_steps")
        }
        if self.batch_size < 2:
            raise ValueError(
                f"batch_size must be >= 2 (in-batch negatives), got {self.batch_size}."
            )
        for name in ("max_steps", "max_length", "mini_batch_size"):
            if getattr(self, name) is not None:
                checked[name] = _validate.int_at_least(getattr(self, name), name, 1)
        checked["seed"] = _validate.non_negative_int(self.seed, "seed")
        for name, value in checked.items():  # plain ints: a numpy integer would not go to JSON
            object.__setattr__(self, name, value)
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}.")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (paper: 0.05), got {self.temperature!r}.")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}.")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ValueError("weight_decay and max_grad_norm must be >= 0.")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if self.pooling is not None:
            validate_pooling(self.pooling)
        _validate.one_of(self.mixed_precision, "mixed_precision", _MIXED_PRECISION)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Rebuild from :meth:`to_dict` output (unknown keys are an error)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown TrainingConfig fields {unknown}; known: {sorted(known)}.")
        return cls(**data)
