"""One SimCSE optimizer step: embed, loss, backward (optionally GradCache), clip, step.

:class:`Optimization` holds the optimizer, schedule and mixed-precision state of a run;
:func:`take_step` does one step on one batch; :func:`forward_backward` is its first half (the
gradients), with the chunked exact-gradient path (GradCache) when ``mini_batch_size`` is set.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from simcse_rag import distributed
from simcse_rag.data import TrainExample
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.losses import simcse_loss

if TYPE_CHECKING:
    from simcse_rag.train_config import TrainingConfig


class DivergedError(FloatingPointError):
    """The loss or the gradient norm of a step is NaN or infinite (the step was not applied)."""


@dataclass
class Optimization:
    """Optimizer, learning-rate schedule and mixed-precision settings of a run.

    Attributes:
        optimizer: AdamW over the trainable parameters.
        scheduler: Linear warm-up, then linear decay to 0.
        amp_dtype: Autocast dtype, ``None`` for full precision.
        scaler: Loss scaler (fp16 only).
    """

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None

    @classmethod
    def create(
        cls, model: torch.nn.Module, config: TrainingConfig, total_steps: int, device: torch.device
    ) -> Optimization:
        """Build the optimizer, schedule and mixed precision that ``config`` asks for."""
        from transformers import get_linear_schedule_with_warmup

        decay, no_decay = [], []
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
        warmup = int(config.warmup_ratio * total_steps)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
        amp_dtype, scaler = _mixed_precision(config.mixed_precision, device)
        return cls(optimizer, scheduler, amp_dtype, scaler)


def _mixed_precision(
    mode: str, device: torch.device
) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """Return ``(autocast dtype or None, GradScaler or None)``."""
    if mode == "no" or (mode == "auto" and device.type != "cuda"):
        return None, None
    if mode == "fp16" and device.type != "cuda":
        raise ValueError("mixed_precision='fp16' needs a CUDA device; use 'bf16' or 'no' on CPU.")
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def resolve_pooling(
    encoder: SimCSEEncoder, config: TrainingConfig, examples: Sequence[TrainExample]
) -> tuple[str, str]:
    """Return ``(training pooling, saved pooling)``; see the module docs on the MLP head."""
    pooling = config.pooling or encoder.pooling
    mlp_only_train = config.mlp_only_train
    if mlp_only_train is None:
        mlp_only_train = pooling == "cls" and all(ex.is_unsupervised for ex in examples)
    if mlp_only_train and pooling != "cls":
        raise ValueError(
            f"mlp_only_train needs pooling='cls' (the MLP head is BERT's pooler); the pooling "
            f"is {pooling!r}. Set pooling='cls' or mlp_only_train=False."
        )
    if pooling == "cls" and getattr(getattr(encoder.model, "pooler", None), "dense", None) is None:
        raise ValueError(
            "pooling='cls' needs the model's pooler (SimCSE's MLP head), which this model lacks; "
            "use pooling='cls_before_pooler' or 'mean'."
        )
    return pooling, ("cls_before_pooler" if mlp_only_train else pooling)


def set_dropout(model: torch.nn.Module, p: float | None) -> None:
    """Set dropout in the config (saved with the model) and in every live Dropout module."""
    if p is None:
        return
    for name in (
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "dropout",
        "attention_dropout",
    ):
        if hasattr(model.config, name):
            setattr(model.config, name, p)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p


def take_step(
    encoder: SimCSEEncoder,
    batch: Sequence[TrainExample],
    tokens: TokenCache,
    config: TrainingConfig,
    opt: Optimization,
) -> float:
    """Do one optimizer step on ``batch`` (this process's shard under torch.distributed).

    Returns:
        The step's loss.

    Raises:
        DivergedError: The loss or gradient norm is not finite; the weights are unchanged.
    """
    loss = forward_backward(encoder, batch, tokens, config, opt.amp_dtype, opt.scaler)
    distributed.average_gradients(encoder.model)
    if not math.isfinite(loss):
        raise DivergedError(f"loss is {loss}")
    if opt.scaler is not None:
        opt.scaler.unscale_(opt.optimizer)
    if config.max_grad_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(encoder.model.parameters(), config.max_grad_norm)
        # With a loss scaler an inf norm is expected now and then: the scaler skips that step.
        if opt.scaler is None and not math.isfinite(float(norm)):
            raise DivergedError(f"gradient norm is {float(norm)}")
    if opt.scaler is not None:
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
    else:
        opt.optimizer.step()
    opt.scheduler.step()
    opt.optimizer.zero_grad(set_to_none=True)
    return loss


class TokenCache:
    """Every distinct text tokenized once up front (no per-step tokenizer work)."""

    def __init__(self, encoder: SimCSEEncoder, examples: Sequence[TrainExample], max_length: int):
        texts = list(dict.fromkeys(t for ex in examples for t in ex.texts))
        ids: dict[str, list[int]] = {}
        for start in range(0, len(texts), 4096):
            chunk = texts[start : start + 4096]
            encoded = encoder.tokenizer(chunk, truncation=True, max_length=max_length)
            ids.update(zip(chunk, encoded["input_ids"], strict=True))
        self.ids = ids
        self.pad_id = encoder.tokenizer.pad_token_id or 0
        self.left = getattr(encoder.tokenizer, "padding_side", "right") == "left"
        self.device = encoder.device

    def features(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Pad the cached ids of ``texts`` to their longest into ``input_ids`` / mask tensors.

        Hand-written instead of ``tokenizer.pad``: it is the hot path and only needs ids + mask.
        """
        rows = [self.ids[t] for t in texts]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if self.left else slice(0, len(row))
            input_ids[i, span] = torch.tensor(row, dtype=torch.long)
            mask[i, span] = 1
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}


def forward_backward(
    encoder: SimCSEEncoder,
    batch: Sequence[TrainExample],
    tokens: TokenCache,
    config: TrainingConfig,
    amp_dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler | None,
) -> float:
    """Embed the batch, compute the SimCSE loss and backpropagate; returns the loss value.

    Anchors, positives and negatives are embedded as separate forward passes (each padded to its
    own longest text); for unsupervised data anchors and positives are the same texts, so the
    two passes differ only by their dropout masks, as in SimCSE.
    """
    anchors = [ex.anchor for ex in batch]
    positives = [ex.positive for ex in batch]
    negatives = [n for ex in batch for n in ex.negatives]
    owner = torch.tensor(
        [i for i, ex in enumerate(batch) for _ in ex.negatives],
        dtype=torch.long,
        device=encoder.device,
    )
    groups = [anchors, positives] + ([negatives] if negatives else [])

    def embed(texts: Sequence[str]) -> torch.Tensor:
        if not texts:  # an empty shard (global batch smaller than the number of processes)
            return torch.zeros((0, encoder.dim), device=encoder.device)
        with torch.autocast(encoder.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            return encoder.forward(tokens.features(texts)).float()

    def loss_of(reps: list[torch.Tensor]) -> torch.Tensor:
        own = owner if negatives else None
        if distributed.is_distributed():  # global batch: every process's texts, with gradients
            if not negatives:  # other shards may have hard negatives: always gather three groups
                reps = [*reps, reps[0].new_zeros((0, reps[0].shape[1]))]
            reps, own = distributed.gather_batch(reps, owner)
        return simcse_loss(
            reps[0],
            reps[1],
            reps[2] if len(reps) > 2 and reps[2].shape[0] else None,
            negative_owner=own if len(reps) > 2 and reps[2].shape[0] else None,
            temperature=config.temperature,
            hard_negative_weight=config.hard_negative_weight,
            symmetric=config.symmetric,
        )

    def backward(loss: torch.Tensor) -> None:
        (scaler.scale(loss) if scaler is not None else loss).backward()

    if config.mini_batch_size is None:
        loss = loss_of([embed(g) for g in groups])
        backward(loss)
        return float(loss.detach())
    return cached_forward_backward(groups, config.mini_batch_size, embed, loss_of, backward)


def cached_forward_backward(
    groups: list[list[str]],
    mini_batch_size: int,
    embed: Callable[[Sequence[str]], torch.Tensor],
    loss_of: Callable[[list[torch.Tensor]], torch.Tensor],
    backward: Callable[[torch.Tensor], None],
) -> float:
    """GradCache (Gao, Zhang, Han & Callan, 2021, https://arxiv.org/abs/2101.06983).

    1. Embed every chunk without a graph, remembering the RNG state (dropout masks) of each.
    2. Compute the loss on the detached embeddings; backward gives d loss / d embedding.
    3. Re-embed each chunk with the same RNG state, with a graph, and backpropagate those
       gradients into the model. Peak activation memory is one chunk's, gradients are exact.

    Args:
        groups: Text groups (anchors, positives[, negatives]), embedded in chunks.
        mini_batch_size: Texts per chunk.
        embed: Texts -> embeddings (with a graph unless under ``torch.no_grad``).
        loss_of: Embeddings of each whole group -> loss.
        backward: Backpropagates a loss (with loss scaling where used).

    Returns:
        The loss value.
    """
    chunks = [
        (g, texts[s : s + mini_batch_size])
        for g, texts in enumerate(groups)
        for s in range(0, len(texts), mini_batch_size)
    ]
    states, reps = [], []
    with torch.no_grad():
        for _, texts in chunks:
            states.append(_RngState.capture())
            reps.append(embed(texts))
    cached = [r.detach().requires_grad_() for r in reps]
    groups_of = [g for g, _ in chunks]
    per_group = [
        torch.cat([c for g, c in zip(groups_of, cached, strict=True) if g == k])
        for k in range(len(groups))
    ]
    loss = loss_of(per_group)
    backward(loss)
    for (_, texts), state, rep in zip(chunks, states, cached, strict=True):
        with state.restored():
            torch.autograd.backward(embed(texts), grad_tensors=rep.grad)
    return float(loss.detach())


@dataclass
class _RngState:
    cpu: torch.Tensor
    cuda: list[torch.Tensor]

    @classmethod
    def capture(cls) -> _RngState:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
        return cls(torch.get_rng_state(), cuda)

    @contextlib.contextmanager
    def restored(self) -> Iterator[None]:
        devices = list(range(len(self.cuda)))
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if self.cuda:
                torch.cuda.set_rng_state_all(self.cuda)
            yield
