"""Fine-tune a :class:`~simcse_rag.encoder.SimCSEEncoder` with SimCSE (Gao, Yao & Chen, 2021).

:class:`TrainingConfig` holds every knob and is saved with each checkpoint; :func:`train` runs the
loop, which reads top to bottom (nanoGPT style): set up -> (resume) -> for each batch: one step
(:mod:`simcse_rag.train_step`: embed, SimCSE loss, backward, clip, step) -> evaluate /
checkpoint (:mod:`simcse_rag.checkpoint`, which also documents the output folder) -> save the
final model. Without an output folder nothing is written: the encoder is trained in memory.

MLP head: SimCSE trains ``cls`` pooling through an MLP (dense + tanh) over [CLS]; in Hugging Face
BERT that MLP *is* the pooler, i.e. our ``pooling="cls"``. Unsupervised SimCSE drops it at test
time ("mlp_only_train"): with ``mlp_only_train`` the model trains with ``cls`` and is saved (and
left) with ``cls_before_pooler``. ``None`` (default) does what the paper does: on for unsupervised
data with ``cls`` pooling, off otherwise. Mean-pooling models (all-MiniLM-L6-v2) have no MLP head.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from simcse_rag import _io, checkpoint, distributed
from simcse_rag.checkpoint import BEST_DIR, CONFIG_FILE, LAST_CHECKPOINT, TrainerState
from simcse_rag.checkpoint import STATE_FILE as STATE_FILE  # re-exported (public name)
from simcse_rag.data import NoDuplicateBatchSampler, TrainExample, as_examples, load_examples
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.train_config import TrainingConfig
from simcse_rag.train_step import (
    DivergedError,
    Optimization,
    TokenCache,
    resolve_pooling,
    set_dropout,
    take_step,
)

logger = logging.getLogger(__name__)

#: ``eval_fn(encoder) -> score`` (higher is better), e.g. STS Spearman on a dev file.
EvalFn = Callable[[SimCSEEncoder], float]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        global_step: Optimizer steps done (including steps before a resume).
        losses: Loss of every step.
        evals: ``{"step", "metric"}`` of every evaluation.
        best_metric: Best evaluation score (``None`` without ``eval_fn``).
        best_step: Step of the best score.
        output_dir: The final model's folder (``None``: trained in memory only).
        best_dir: Folder of the best model (``None`` without ``eval_fn`` or ``output_dir``).
        last_checkpoint: Folder of ``checkpoint-last`` (``None`` without ``output_dir``).
        seconds: Wall time of this call.
    """

    global_step: int
    losses: list[float]
    evals: list[dict[str, float]]
    best_metric: float | None
    best_step: int | None
    output_dir: Path | None
    best_dir: Path | None
    last_checkpoint: Path | None
    seconds: float


def train(
    encoder: SimCSEEncoder,
    examples: Sequence[TrainExample | Sequence[object] | str] | str | os.PathLike[str],
    config: TrainingConfig | None = None,
    *,
    output_dir: str | os.PathLike[str] | None,
    eval_fn: EvalFn | None = None,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Fine-tune ``encoder`` in place with the SimCSE objective (and save it to ``output_dir``).

    Args:
        encoder: The encoder to train (its ``model`` is updated in place).
        examples: In-memory examples (see :func:`simcse_rag.data.as_examples`: sentences for
            unsupervised SimCSE, ``(anchor, positive[, negatives])`` tuples, ``TrainExample``)
            or a data file path (see :func:`simcse_rag.data.load_examples`).
        config: Hyper-parameters (default ``TrainingConfig()``).
        output_dir: Folder for checkpoints and the final model; ``None`` writes nothing (the
            trained encoder is only in memory, and no best model is kept).
        eval_fn: Called with the encoder (eval mode, inference pooling) every
            ``config.eval_steps`` and at the end; the best model is kept in ``output_dir/best``.
        resume: Continue from ``output_dir/checkpoint-last``, giving the same result as an
            uninterrupted run.
        overwrite: Allow a non-empty ``output_dir`` without resuming (its old ``best`` is removed).
        show_progress: Show a tqdm bar with the loss.
        on_step: Called as ``on_step(step, loss)`` after every optimizer step.

    Raises:
        ValueError: Bad data or configuration, or an ``output_dir`` that does not fit the run
            (:class:`~simcse_rag.checkpoint.OutputNotEmptyError` without ``resume``/``overwrite``,
            :class:`~simcse_rag.checkpoint.NoCheckpointError` /
            :class:`~simcse_rag.checkpoint.CheckpointMismatchError` with ``resume``).
        FloatingPointError: The loss or gradients became NaN/inf; nothing after the last good
            checkpoint is written (:class:`~simcse_rag.checkpoint.TrainingStoppedError` when
            there is an ``output_dir`` to resume from).
    """
    started = time.perf_counter()
    config = config or TrainingConfig()
    examples = _read_examples(examples)
    out = _output_dir(output_dir, resume=resume, overwrite=overwrite)
    run = _set_up(encoder, examples, config, out, resume)
    state = run.state
    encoder.model.train()
    encoder.pooling = run.train_pooling
    bar = _progress_bar(state, show_progress)
    try:
        for batch in _batches(run.sampler, examples, state):
            try:  # under torch.distributed each process embeds its shard of the global batch
                loss = take_step(encoder, distributed.shard(batch), run.tokens, config, run.opt)
            except DivergedError as exc:
                raise checkpoint.diverged_error(str(exc), state.step + 1, out) from exc
            state.step, state.batch_in_epoch = state.step + 1, state.batch_in_epoch + 1
            state.losses.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{run.opt.scheduler.get_last_lr()[0]:.2e}")
            if on_step is not None:
                on_step(state.step, loss)
            if eval_fn is not None and state.step % config.eval_steps == 0:
                run.evaluate(eval_fn)
            if state.step % config.checkpoint_steps == 0:
                run.save_checkpoint()
    finally:
        bar.close()
        run.opt.optimizer.zero_grad(set_to_none=True)
        encoder.model.eval()
        encoder.pooling = run.save_pooling

    # ---- the end: last evaluation, last checkpoint, final model at the root
    if eval_fn is not None and run.evaluated_step != state.step:
        run.evaluate(eval_fn)
    if run.saved_step != state.step:
        run.save_checkpoint()
    if out is not None and distributed.is_main_process():
        checkpoint.save_final(out, encoder, state, config)
    return run.result(started, with_best=eval_fn is not None)


# --------------------------------------------------------------------------- set-up helpers
def _read_examples(
    examples: Sequence[TrainExample | Sequence[object] | str] | str | os.PathLike[str],
) -> list[TrainExample]:
    if isinstance(examples, (str, os.PathLike)):
        examples = load_examples(examples)
    examples = as_examples(examples)
    if not examples:
        raise ValueError("No training examples given.")
    return examples


def _output_dir(
    output_dir: str | os.PathLike[str] | None, *, resume: bool, overwrite: bool
) -> Path | None:
    if output_dir is None:
        if resume:
            raise ValueError(
                "resume=True needs the output_dir of the run to continue; pass it or drop resume."
            )
        return None
    out = Path(output_dir)
    if distributed.is_main_process():  # under torchrun only rank 0 touches the disk
        out = checkpoint.prepare_output_dir(out, resume=resume, overwrite=overwrite)
    return out


@dataclass
class _Run:
    """What :func:`train` sets up before the first step, and its evaluate / save actions."""

    encoder: SimCSEEncoder
    config: TrainingConfig
    out: Path | None
    sampler: NoDuplicateBatchSampler
    tokens: TokenCache
    opt: Optimization
    state: TrainerState
    train_pooling: str
    save_pooling: str
    saved_step: int
    evaluated_step: int

    def evaluate(self, eval_fn: EvalFn) -> None:
        """Score the encoder (rank 0 only); save a new best model when there is a folder."""
        state = self.state
        self.evaluated_step = state.step
        if not distributed.is_main_process():
            return
        metric = _run_eval(self.encoder, eval_fn, self.save_pooling, self.train_pooling)
        state.evals.append({"step": state.step, "metric": metric})
        logger.info("step %d: eval %.4f", state.step, metric)
        if state.best_metric is None or metric > state.best_metric:
            state.best_metric, state.best_step = metric, state.step
            if self.out is not None:
                with _pooling(self.encoder, self.save_pooling):
                    checkpoint.save_best(
                        self.out / BEST_DIR, self.encoder, step=state.step, metric=metric
                    )

    def save_checkpoint(self) -> None:
        """Write ``checkpoint-last`` (rank 0, and only when there is an output folder)."""
        self.saved_step = self.state.step
        if self.out is None or not distributed.is_main_process():
            return
        with _pooling(self.encoder, self.save_pooling):
            checkpoint.save_checkpoint(
                self.out / LAST_CHECKPOINT, self.encoder, self.opt, self.state, self.config
            )

    def result(self, started: float, *, with_best: bool) -> TrainResult:
        """The :class:`TrainResult` of a run that began at ``time.perf_counter() == started``."""
        state, out = self.state, self.out
        return TrainResult(
            global_step=state.step,
            losses=list(state.losses),
            evals=list(state.evals),
            best_metric=state.best_metric,
            best_step=state.best_step,
            output_dir=out,
            best_dir=out / BEST_DIR if out is not None and with_best else None,
            last_checkpoint=out / LAST_CHECKPOINT if out is not None else None,
            seconds=time.perf_counter() - started,
        )


def _set_up(
    encoder: SimCSEEncoder,
    examples: list[TrainExample],
    config: TrainingConfig,
    out: Path | None,
    resume: bool,
) -> _Run:
    """Seed, pooling / MLP head, dropout, data, optimizer, schedule; then resume if asked."""
    torch.manual_seed(config.seed)
    train_pooling, save_pooling = resolve_pooling(encoder, config, examples)
    set_dropout(encoder.model, config.dropout)
    sampler = NoDuplicateBatchSampler(examples, config.batch_size, seed=config.seed)
    tokens = TokenCache(encoder, examples, config.max_length or encoder.max_length)
    total_steps = config.max_steps or sum(len(sampler.batches(e)) for e in range(config.epochs))
    opt = Optimization.create(encoder.model, config, total_steps, encoder.device)
    state = TrainerState(total_steps=total_steps)
    if resume and out is not None:
        state = checkpoint.load_checkpoint(out / LAST_CHECKPOINT, encoder, opt, config)
        state.total_steps = total_steps
        logger.info("Resumed from %s at step %d", out / LAST_CHECKPOINT, state.step)
    return _Run(
        encoder,
        config,
        out,
        sampler,
        tokens,
        opt,
        state,
        train_pooling,
        save_pooling,
        saved_step=state.step if resume else -1,
        evaluated_step=state.evals[-1]["step"] if state.evals else -1,
    )


# --------------------------------------------------------------------------- loop helpers
def _batches(
    sampler: NoDuplicateBatchSampler, examples: Sequence[TrainExample], state: TrainerState
) -> Iterator[list[TrainExample]]:
    """Yield global batches from ``state``'s position until ``state.total_steps``.

    Reads ``state`` anew for every batch (the loop advances ``step`` / ``batch_in_epoch``) and
    moves it to the next epoch when one is used up; an epoch's batches depend only on (seed,
    epoch), so a resumed run sees the same batches.
    """
    batches, batches_epoch = [], -1
    while state.step < state.total_steps:
        if batches_epoch != state.epoch:
            batches, batches_epoch = sampler.batches(state.epoch), state.epoch
        if state.batch_in_epoch >= len(batches):
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            continue
        yield [examples[i] for i in batches[state.batch_in_epoch]]


def _progress_bar(state: TrainerState, show_progress: bool) -> tqdm:
    return tqdm(
        total=state.total_steps,
        initial=state.step,
        disable=not show_progress or not distributed.is_main_process(),
        desc="Training",
    )


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


# --------------------------------------------------------------------------- reporting
def training_summary(result: TrainResult) -> str:
    """One-line human summary of a run (used by the CLI)."""
    text = f"trained {result.global_step} steps in {result.seconds:.0f}s"
    if result.losses:
        text += f", final loss {result.losses[-1]:.4f}"
    if result.best_metric is not None:
        text += f", best eval {result.best_metric:.4f} at step {result.best_step}"
    if result.output_dir is None:
        return text + "; model kept in memory (not saved)"
    return text + f"; model saved to {result.output_dir}"


def read_training_config(folder: str | os.PathLike[str]) -> TrainingConfig:
    """Read the :class:`TrainingConfig` saved in a checkpoint or output folder."""
    return TrainingConfig.from_dict(
        _io.read_json(Path(folder) / CONFIG_FILE, what="training config")
    )
