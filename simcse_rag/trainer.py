"""Fine-tune a :class:`~simcse_rag.encoder.SimCSEEncoder` with SimCSE (Gao, Yao & Chen, 2021).

:class:`TrainingConfig` holds every knob and is saved with each checkpoint; :func:`train` runs the
loop, which reads top to bottom (nanoGPT style): set up -> (resume) -> for each batch: embed,
SimCSE loss, backward, clip, step -> evaluate / checkpoint -> save the final model.

Output folder layout::

    out/                    final model (loads in SimCSEEncoder and SentenceTransformer)
    out/training_config.json, out/trainer_state.json
    out/best/               best model on the evaluation function (when one is given)
    out/checkpoint-last/    model + optimizer.pt, scheduler.pt, rng.pt (state dicts, loaded with
                            weights_only=True) + trainer_state.json + training_config.json

MLP head: SimCSE trains ``cls`` pooling through an MLP (dense + tanh) over [CLS]; in Hugging Face
BERT that MLP *is* the pooler, i.e. our ``pooling="cls"``. Unsupervised SimCSE drops it at test
time ("mlp_only_train"): with ``mlp_only_train`` the model trains with ``cls`` and is saved (and
left) with ``cls_before_pooler``. ``None`` (default) does what the paper does: on for unsupervised
data with ``cls`` pooling, off otherwise. Mean-pooling models (all-MiniLM-L6-v2) have no MLP head.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from simcse_rag import _io, distributed
from simcse_rag.data import NoDuplicateBatchSampler, TrainExample, as_examples, load_examples
from simcse_rag.encoder import SimCSEEncoder, _quiet_transformers
from simcse_rag.losses import simcse_loss
from simcse_rag.pooling import validate_pooling

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "checkpoint-last"
BEST_DIR = "best"
CONFIG_FILE = "training_config.json"
STATE_FILE = "trainer_state.json"
_MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
_ST_MODULE_DIRS = ("1_Pooling", "2_Dense", "2_Normalize", "3_Normalize")

#: ``eval_fn(encoder) -> score`` (higher is better), e.g. STS Spearman on a dev file.
EvalFn = Callable[[SimCSEEncoder], float]


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
        for name in ("epochs", "batch_size", "eval_steps", "checkpoint_steps"):
            _check_int(name, getattr(self, name), minimum=1)
        if self.batch_size < 2:
            raise ValueError(
                f"batch_size must be >= 2 (in-batch negatives), got {self.batch_size}."
            )
        for name in ("max_steps", "max_length", "mini_batch_size"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        _check_int("seed", self.seed, minimum=0)
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
        if self.mixed_precision not in _MIXED_PRECISION:
            raise ValueError(
                f"mixed_precision must be one of {', '.join(_MIXED_PRECISION)}; "
                f"got {self.mixed_precision!r}."
            )

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


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


@dataclass
class TrainerState:
    """Progress saved in ``trainer_state.json`` (enough to resume exactly)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    total_steps: int = 0
    losses: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_step: int | None = None


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        global_step: Optimizer steps done (including steps before a resume).
        losses: Loss of every step.
        evals: ``{"step", "metric"}`` of every evaluation.
        best_metric: Best evaluation score (``None`` without ``eval_fn``).
        best_step: Step of the best score.
        output_dir: The final model's folder.
        best_dir: Folder of the best model (``None`` without ``eval_fn``).
        last_checkpoint: Folder of ``checkpoint-last``.
        seconds: Wall time of this call.
    """

    global_step: int
    losses: list[float]
    evals: list[dict[str, float]]
    best_metric: float | None
    best_step: int | None
    output_dir: Path
    best_dir: Path | None
    last_checkpoint: Path
    seconds: float


def train(
    encoder: SimCSEEncoder,
    examples: Sequence[TrainExample | Sequence[object] | str] | str | os.PathLike[str],
    config: TrainingConfig | None = None,
    *,
    output_dir: str | os.PathLike[str],
    eval_fn: EvalFn | None = None,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Fine-tune ``encoder`` in place with the SimCSE objective and save it to ``output_dir``.

    Args:
        encoder: The encoder to train (its ``model`` is updated in place).
        examples: In-memory examples (see :func:`simcse_rag.data.as_examples`: sentences for
            unsupervised SimCSE, ``(anchor, positive[, negatives])`` tuples, ``TrainExample``)
            or a data file path (see :func:`simcse_rag.data.load_examples`).
        config: Hyper-parameters (default ``TrainingConfig()``).
        output_dir: Folder for checkpoints and the final model.
        eval_fn: Called with the encoder (eval mode, inference pooling) every
            ``config.eval_steps`` and at the end; higher is better; the best model is kept in
            ``output_dir/best``.
        resume: Continue from ``output_dir/checkpoint-last`` (model, optimizer, scheduler, RNG,
            step), giving the same result as an uninterrupted run.
        overwrite: Allow a non-empty ``output_dir`` without resuming (its old ``best`` is removed).
        show_progress: Show a tqdm bar with the loss.
        on_step: Called as ``on_step(step, loss)`` after every optimizer step (logging, timing).

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: Bad data or configuration, or a non-empty ``output_dir`` without
            ``resume``/``overwrite``.
        FloatingPointError: The loss or gradients became NaN/inf; nothing after the last good
            checkpoint is written.
    """
    started = time.perf_counter()
    config = config or TrainingConfig()
    if isinstance(examples, (str, os.PathLike)):
        examples = load_examples(examples)
    examples = as_examples(examples)
    if not examples:
        raise ValueError("No training examples given.")
    out = Path(output_dir)
    if distributed.is_main_process():  # under torchrun only rank 0 touches the disk
        out = _prepare_output_dir(out, resume=resume, overwrite=overwrite)

    # ---- set-up: seed, pooling / MLP head, dropout, data, optimizer, schedule
    torch.manual_seed(config.seed)
    device = encoder.device
    train_pooling, save_pooling = _resolve_pooling(encoder, config, examples)
    _set_dropout(encoder.model, config.dropout)
    sampler = NoDuplicateBatchSampler(examples, config.batch_size, seed=config.seed)
    tokens = _TokenCache(encoder, examples, config.max_length or encoder.max_length)
    total_steps = config.max_steps or sum(len(sampler.batches(e)) for e in range(config.epochs))
    optimizer = _make_optimizer(encoder.model, config)
    scheduler = _make_scheduler(optimizer, config, total_steps)
    amp_dtype, scaler = _mixed_precision(config.mixed_precision, device)
    state = TrainerState(total_steps=total_steps)
    if resume:
        state = _load_checkpoint(
            out / LAST_CHECKPOINT, encoder, optimizer, scheduler, scaler, config
        )
        state.total_steps = total_steps
        logger.info("Resumed from %s at step %d", out / LAST_CHECKPOINT, state.step)
    saved_step = state.step if resume else -1
    evaluated_step = state.evals[-1]["step"] if state.evals else -1

    def save_checkpoint() -> None:
        if not distributed.is_main_process():
            return
        with _pooling(encoder, save_pooling):
            _save_checkpoint(
                out / LAST_CHECKPOINT, encoder, optimizer, scheduler, scaler, state, config
            )

    def evaluate() -> None:
        if not distributed.is_main_process():
            return
        metric = _run_eval(encoder, eval_fn, save_pooling, train_pooling)  # type: ignore[arg-type]
        state.evals.append({"step": state.step, "metric": metric})
        logger.info("step %d: eval %.4f", state.step, metric)
        if state.best_metric is None or metric > state.best_metric:
            state.best_metric, state.best_step = metric, state.step
            with _pooling(encoder, save_pooling):
                _save_model(out / BEST_DIR, encoder, extra={"step": state.step, "metric": metric})

    # ---- the loop
    encoder.model.train()
    encoder.pooling = train_pooling
    bar = tqdm(
        total=total_steps,
        initial=state.step,
        disable=not show_progress or not distributed.is_main_process(),
        desc="Training",
    )
    batches, batches_epoch = [], -1
    try:
        while state.step < total_steps:
            if batches_epoch != state.epoch:  # an epoch's batches depend only on (seed, epoch)
                batches, batches_epoch = sampler.batches(state.epoch), state.epoch
            if state.batch_in_epoch >= len(batches):
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                continue
            # Under torch.distributed each process embeds its shard of the global batch.
            batch = distributed.shard([examples[i] for i in batches[state.batch_in_epoch]])
            loss = _forward_backward(encoder, batch, tokens, config, amp_dtype, scaler)
            distributed.average_gradients(encoder.model)
            if not math.isfinite(loss):
                raise _diverged(f"loss is {loss}", state, out)
            if scaler is not None:
                scaler.unscale_(optimizer)
            if config.max_grad_norm > 0:
                norm = torch.nn.utils.clip_grad_norm_(
                    encoder.model.parameters(), config.max_grad_norm
                )
                if scaler is None and not math.isfinite(float(norm)):
                    raise _diverged(f"gradient norm is {float(norm)}", state, out)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step, state.batch_in_epoch = state.step + 1, state.batch_in_epoch + 1
            state.losses.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if on_step is not None:
                on_step(state.step, loss)
            if eval_fn is not None and state.step % config.eval_steps == 0:
                evaluate()
                evaluated_step = state.step
            if state.step % config.checkpoint_steps == 0:
                save_checkpoint()
                saved_step = state.step
    finally:
        bar.close()
        optimizer.zero_grad(set_to_none=True)
        encoder.model.eval()
        encoder.pooling = save_pooling

    # ---- the end: last evaluation, last checkpoint, final model at the root
    if eval_fn is not None and evaluated_step != state.step:
        evaluate()
    if saved_step != state.step:
        save_checkpoint()
    if distributed.is_main_process():
        _save_final(out, encoder, state, config)
    return TrainResult(
        global_step=state.step,
        losses=list(state.losses),
        evals=list(state.evals),
        best_metric=state.best_metric,
        best_step=state.best_step,
        output_dir=out,
        best_dir=out / BEST_DIR if eval_fn is not None else None,
        last_checkpoint=out / LAST_CHECKPOINT,
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------- set-up helpers
def _prepare_output_dir(out: Path, *, resume: bool, overwrite: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise ValueError(f"Output path {out} is a file; give a folder.")
    if resume:
        if not (out / LAST_CHECKPOINT / STATE_FILE).is_file():
            raise ValueError(
                f"Cannot resume: {out / LAST_CHECKPOINT} has no checkpoint; drop --resume to "
                "start a new run."
            )
        return out
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(
                f"Output folder {out} is not empty; use --resume to continue its run, "
                "--overwrite to replace it, or another --out."
            )
        shutil.rmtree(out / BEST_DIR, ignore_errors=True)  # belongs to the old run
    out.mkdir(parents=True, exist_ok=True)
    return out


def _resolve_pooling(
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


def _set_dropout(model: torch.nn.Module, p: float | None) -> None:
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


def _make_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def _make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainingConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    from transformers import get_linear_schedule_with_warmup

    warmup = int(config.warmup_ratio * total_steps)
    return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


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


@contextlib.contextmanager
def _pooling(encoder: SimCSEEncoder, pooling: str) -> Iterator[None]:
    previous = encoder.pooling
    encoder.pooling = pooling
    try:
        yield
    finally:
        encoder.pooling = previous


def _run_eval(
    encoder: SimCSEEncoder, eval_fn: EvalFn, save_pooling: str, train_pooling: str
) -> float:
    encoder.model.eval()
    try:
        with _pooling(encoder, save_pooling):
            metric = float(eval_fn(encoder))
    finally:
        encoder.model.train()
        encoder.pooling = train_pooling
    return metric


def _diverged(what: str, state: TrainerState, out: Path) -> FloatingPointError:
    last = out / LAST_CHECKPOINT
    where = f"{last} (step {_saved_step(last)})" if last.is_dir() else "none was written yet"
    return FloatingPointError(
        f"Training stopped at step {state.step + 1}: {what}. The last good checkpoint is {where}; "
        "lower the learning rate or check the data, then resume with --resume."
    )


def _saved_step(folder: Path) -> int | None:
    try:
        return int(_io.read_json(folder / STATE_FILE, what="trainer state")["step"])
    except (ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------- one step
class _TokenCache:
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


def _forward_backward(
    encoder: SimCSEEncoder,
    batch: Sequence[TrainExample],
    tokens: _TokenCache,
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
    return _cached_forward_backward(groups, config.mini_batch_size, embed, loss_of, backward)


def _cached_forward_backward(
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


# --------------------------------------------------------------------------- saving / resuming
def _save_model(
    folder: Path, encoder: SimCSEEncoder, *, extra: dict[str, Any] | None = None
) -> None:
    def write(tmp: Path) -> None:
        with _quiet_transformers():
            encoder.save_pretrained(tmp)
        if extra is not None:
            _io.write_json(tmp / "eval.json", extra)

    _io.atomic_write_dir(folder, write)


def _save_checkpoint(
    folder: Path,
    encoder: SimCSEEncoder,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler | None,
    state: TrainerState,
    config: TrainingConfig,
) -> None:
    """Write model + optimizer/scheduler/RNG state dicts + JSON state atomically."""

    def write(tmp: Path) -> None:
        with _quiet_transformers():
            encoder.save_pretrained(tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_initialized():
            rng["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
        torch.save(rng, tmp / "rng.pt")
        if scaler is not None:
            torch.save(scaler.state_dict(), tmp / "scaler.pt")
        _io.write_json(tmp / STATE_FILE, dataclasses.asdict(state))
        _io.write_json(tmp / CONFIG_FILE, config.to_dict())

    _io.atomic_write_dir(folder, write)


def _load_checkpoint(
    folder: Path,
    encoder: SimCSEEncoder,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler | None,
    config: TrainingConfig,
) -> TrainerState:
    from safetensors.torch import load_file

    saved = TrainingConfig.from_dict(_io.read_json(folder / CONFIG_FILE, what="training config"))
    changed = {
        k: (v, getattr(config, k)) for k, v in saved.to_dict().items() if getattr(config, k) != v
    }
    if changed:
        logger.warning("Resuming with a changed config (saved -> now): %s", changed)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"Checkpoint {folder} has no model.safetensors; cannot resume.")
    tensors = load_file(str(weights), device=str(encoder.device))
    missing, unexpected = encoder.model.load_state_dict(tensors, strict=True)
    if missing or unexpected:
        raise ValueError(
            f"Checkpoint {folder} does not match the model (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}); resume with the same --model."
        )
    load = dict(map_location=encoder.device, weights_only=True)
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", **load))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", **load))
    if scaler is not None and (folder / "scaler.pt").is_file():
        scaler.load_state_dict(torch.load(folder / "scaler.pt", **load))
    rng = torch.load(folder / "rng.pt", map_location="cpu", weights_only=True)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(rng["cuda"]))
    data = _io.read_json(folder / STATE_FILE, what="trainer state")
    try:
        return TrainerState(**data)
    except TypeError as exc:
        raise ValueError(f"{folder / STATE_FILE} is not a trainer state: {exc}") from exc


def _save_final(
    out: Path, encoder: SimCSEEncoder, state: TrainerState, config: TrainingConfig
) -> None:
    """Put the final model's files at the root of ``out`` next to the checkpoints.

    The model is first written completely to a temporary sibling folder, then its entries are
    moved in one by one (the checkpoints beside them are never touched).
    """
    tmp = out / f".final-{uuid.uuid4().hex[:8]}"
    with _quiet_transformers():
        encoder.save_pretrained(tmp)
    try:
        _io.write_json(tmp / STATE_FILE, dataclasses.asdict(state))
        _io.write_json(tmp / CONFIG_FILE, config.to_dict())
        for name in _ST_MODULE_DIRS:  # stale module folders of an earlier pooling
            shutil.rmtree(out / name, ignore_errors=True)
        for entry in sorted(tmp.iterdir(), key=lambda p: p.name == "modules.json"):
            target = out / entry.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def training_summary(result: TrainResult) -> str:
    """One-line human summary of a run (used by the CLI)."""
    text = f"trained {result.global_step} steps in {result.seconds:.0f}s"
    if result.losses:
        text += f", final loss {result.losses[-1]:.4f}"
    if result.best_metric is not None:
        text += f", best eval {result.best_metric:.4f} at step {result.best_step}"
    return text + f"; model saved to {result.output_dir}"


def read_training_config(folder: str | os.PathLike[str]) -> TrainingConfig:
    """Read the :class:`TrainingConfig` saved in a checkpoint or output folder."""
    return TrainingConfig.from_dict(
        _io.read_json(Path(folder) / CONFIG_FILE, what="training config")
    )
