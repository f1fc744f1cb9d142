"""Training checkpoints: what a run writes to its output folder, and resuming from it.

Output folder layout::

    out/                    final model (loads in SimCSEEncoder and SentenceTransformer)
    out/training_config.json, out/trainer_state.json
    out/best/               best model on the evaluation function (+ eval.json)
    out/checkpoint-last/    model + optimizer.pt, scheduler.pt, rng.pt[, scaler.pt] (state dicts,
                            loaded with weights_only=True) + trainer_state.json +
                            training_config.json

Every folder is written to a temporary sibling and swapped into place
(:func:`simcse_rag._io.atomic_write_dir`), so a crash leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from simcse_rag import _io, st_format
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.train_step import Optimization

if TYPE_CHECKING:
    from simcse_rag.train_config import TrainingConfig

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "checkpoint-last"
BEST_DIR = "best"
CONFIG_FILE = "training_config.json"
STATE_FILE = "trainer_state.json"


class NoCheckpointError(ValueError):
    """``resume`` was asked for, but the output folder holds no checkpoint to resume from.

    Attributes:
        reason: What is wrong, without the advice (the CLI words that with its flags).
    """

    def __init__(self, out: Path) -> None:
        self.reason = f"Cannot resume: {out / LAST_CHECKPOINT} has no checkpoint"
        super().__init__(f"{self.reason}; drop resume=True to start a new run.")


class OutputNotEmptyError(ValueError):
    """The output folder holds files of another run, and neither resume nor overwrite is set.

    Attributes:
        out: The output folder.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        super().__init__(
            f"Output folder {out} is not empty; pass resume=True to continue its run, "
            "overwrite=True to replace it, or another output_dir."
        )


class CheckpointMismatchError(ValueError):
    """The checkpoint's weights do not fit the encoder the run resumes with.

    Attributes:
        reason: What does not match, without the advice (the CLI words that with its flags).
    """

    def __init__(self, folder: Path, detail: str) -> None:
        self.reason = f"Checkpoint {folder} does not match the model ({detail})"
        super().__init__(f"{self.reason}; resume with the same model the run started from.")


class TrainingStoppedError(FloatingPointError):
    """Training stopped on a non-finite loss or gradient, after writing its last good checkpoint.

    Attributes:
        reason: Where and why it stopped, and the last good checkpoint, without the advice (the
            CLI words that with its flags).
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"{reason}; lower the learning rate or check the data, then resume with resume=True."
        )


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


def prepare_output_dir(out: Path, *, resume: bool, overwrite: bool) -> Path:
    """Check ``out`` for a new run (empty, or ``overwrite``) or a resumed one; create it.

    Raises:
        ValueError: ``out`` is a file.
        NoCheckpointError: ``resume`` is set and ``out`` has no checkpoint.
        OutputNotEmptyError: ``out`` holds files of another run while neither ``resume`` nor
            ``overwrite`` is set.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"Output path {out} is a file; give a folder.")
    if resume:
        if not (out / LAST_CHECKPOINT / STATE_FILE).is_file():
            raise NoCheckpointError(out)
        return out
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputNotEmptyError(out)
        shutil.rmtree(out / BEST_DIR, ignore_errors=True)  # belongs to the old run
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_best(folder: Path, encoder: SimCSEEncoder, *, step: int, metric: float) -> None:
    """Save the model with ``eval.json`` (``{"step", "metric"}``) atomically."""

    def write(tmp: Path) -> None:
        encoder.save_pretrained(tmp)
        _io.write_json(tmp / "eval.json", {"step": step, "metric": metric})

    _io.atomic_write_dir(folder, write)


def save_checkpoint(
    folder: Path,
    encoder: SimCSEEncoder,
    opt: Optimization,
    state: TrainerState,
    config: TrainingConfig,
) -> None:
    """Write model + optimizer/scheduler/RNG state dicts + JSON state atomically."""

    def write(tmp: Path) -> None:
        encoder.save_pretrained(tmp)
        torch.save(opt.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(opt.scheduler.state_dict(), tmp / "scheduler.pt")
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_initialized():
            rng["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
        torch.save(rng, tmp / "rng.pt")
        if opt.scaler is not None:
            torch.save(opt.scaler.state_dict(), tmp / "scaler.pt")
        _io.write_json(tmp / STATE_FILE, dataclasses.asdict(state))
        _io.write_json(tmp / CONFIG_FILE, config.to_dict())

    _io.atomic_write_dir(folder, write)


def load_checkpoint(
    folder: Path, encoder: SimCSEEncoder, opt: Optimization, config: TrainingConfig
) -> TrainerState:
    """Restore weights, optimizer, schedule, loss scaler and RNG from ``folder``.

    A config that differs from the saved one is allowed (e.g. more ``max_steps``) and logged.

    Returns:
        The saved progress.

    Raises:
        ValueError: The checkpoint is incomplete or corrupt.
        CheckpointMismatchError: The checkpoint is of a different model.
    """
    from safetensors.torch import load_file

    saved = type(config).from_dict(_io.read_json(folder / CONFIG_FILE, what="training config"))
    changed = {
        k: (v, getattr(config, k)) for k, v in saved.to_dict().items() if getattr(config, k) != v
    }
    if changed:
        logger.warning("Resuming with a changed config (saved -> now): %s", changed)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"Checkpoint {folder} has no model.safetensors; cannot resume.")
    tensors = load_file(str(weights), device=str(encoder.device))
    try:  # strict: raises RuntimeError on missing / unexpected names and on shape mismatches
        encoder.model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointMismatchError(folder, detail) from exc
    load = dict(map_location=encoder.device, weights_only=True)
    opt.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", **load))
    opt.scheduler.load_state_dict(torch.load(folder / "scheduler.pt", **load))
    if opt.scaler is not None and (folder / "scaler.pt").is_file():
        opt.scaler.load_state_dict(torch.load(folder / "scaler.pt", **load))
    rng = torch.load(folder / "rng.pt", map_location="cpu", weights_only=True)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(rng["cuda"]))
    data = _io.read_json(folder / STATE_FILE, what="trainer state")
    try:
        return TrainerState(**data)
    except TypeError as exc:
        raise ValueError(f"{folder / STATE_FILE} is not a trainer state: {exc}") from exc


def save_final(
    out: Path, encoder: SimCSEEncoder, state: TrainerState, config: TrainingConfig
) -> None:
    """Put the final model's files at the root of ``out`` next to the checkpoints.

    The model is first written completely to a temporary sibling folder, then its entries are
    moved in one by one (the checkpoints beside them are never touched).
    """
    tmp = out / f".final-{uuid.uuid4().hex[:8]}"
    encoder.save_pretrained(tmp)
    try:
        _io.write_json(tmp / STATE_FILE, dataclasses.asdict(state))
        _io.write_json(tmp / CONFIG_FILE, config.to_dict())
        for name in st_format.MODULE_DIRS:  # stale module folders of an earlier pooling
            shutil.rmtree(out / name, ignore_errors=True)
        for entry in sorted(tmp.iterdir(), key=lambda p: p.name == "modules.json"):
            target = out / entry.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def diverged_error(what: str, step: int, out: Path | None) -> FloatingPointError:
    """The error for a run stopped at ``step`` (1-based), naming its last good checkpoint."""
    if out is None:
        return FloatingPointError(
            f"Training stopped at step {step}: {what}. No checkpoint is written without an "
            "output folder; lower the learning rate or check the data, then train again."
        )
    last = out / LAST_CHECKPOINT
    where = f"{last} (step {_saved_step(last)})" if last.is_dir() else "none was written yet"
    return TrainingStoppedError(
        f"Training stopped at step {step}: {what}. The last good checkpoint is {where}"
    )


def _saved_step(folder: Path) -> int | None:
    try:
        return int(_io.read_json(folder / STATE_FILE, what="trainer state")["step"])
    except (ValueError, KeyError, TypeError):
        return None
