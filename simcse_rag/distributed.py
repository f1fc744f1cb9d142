"""Multi-process (multi-GPU / multi-node) training helpers: in-batch negatives across processes.

Launch training with ``torchrun --nproc-per-node N -m simcse_rag train ...`` (or ``accelerate
launch``; the CLI joins the process group via :func:`init_from_env`); when
``torch.distributed`` is initialised, :func:`simcse_rag.trainer.train` splits each global batch
into one contiguous shard per process, embeds its shard, gathers every process's embeddings
*with their gradients* (:func:`torch.distributed.nn.functional.all_gather`), and computes the
loss of the whole global batch, so every anchor still sees every positive and hard negative of
the global batch as a negative, exactly as one process with the same global batch would.

Why the gradients come out right: each process computes the same global loss ``L``; the
all-gather's backward sums the gradient that every process sends back for a shard, so a shard's
embeddings receive ``W * dL/de`` (``W`` processes); :func:`average_gradients` then averages the
parameter gradients over processes, giving exactly ``dL/dtheta``. The loss computation (a
``B x B`` matrix) is repeated on every process, which is negligible next to the encoder.

Works with any backend (``gloo`` on CPU, ``nccl`` on GPUs); shards may differ in size (the
last batch of an epoch), which the gather handles by padding.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TypeVar

import torch

T = TypeVar("T")


def is_distributed() -> bool:
    """Whether ``torch.distributed`` is initialised with more than one process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    import torch.distributed as dist

    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    import torch.distributed as dist

    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Whether this process should write files, log and show progress (rank 0)."""
    return rank() == 0


def init_from_env() -> str | None:
    """Join the process group that ``torchrun`` / ``accelerate launch`` describe in the environment.

    Does nothing (returns ``None``) unless ``WORLD_SIZE`` > 1. Uses ``nccl`` when CUDA is
    available (one GPU per process, ``cuda:LOCAL_RANK``), else ``gloo`` on CPU.

    Returns:
        The device this process should use (``"cuda:N"`` or ``"cpu"``), or ``None`` when not
        launched as several processes.
    """
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo")
    return f"cuda:{local}" if cuda else "cpu"


def shard(items: Sequence[T]) -> list[T]:
    """This process's contiguous slice of a global batch (sizes differ by at most one).

    Concatenating the shards of ranks 0, 1, ... gives back ``items`` in order, so gathered
    embeddings line up with the global batch.
    """
    n, w, r = len(items), world_size(), rank()
    start = r * (n // w) + min(r, n % w)
    stop = start + n // w + (1 if r < n % w else 0)
    return list(items[start:stop])


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (``(n_r, ...)``, ``n_r`` may differ per rank) from every process,
    in rank order, keeping the autograd graph to this process's part.

    Returns ``tensor`` unchanged when not distributed.
    """
    if not is_distributed():
        return tensor
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_gather

    sizes = torch.tensor([tensor.shape[0]], device=tensor.device)
    all_sizes = [torch.zeros_like(sizes) for _ in range(dist.get_world_size())]
    dist.all_gather(all_sizes, sizes)
    counts = [int(s.item()) for s in all_sizes]
    longest = max(counts)
    if tensor.shape[0] < longest:  # all_gather needs equal shapes: pad, then cut the padding off
        pad = tensor.new_zeros((longest - tensor.shape[0], *tensor.shape[1:]))
        tensor = torch.cat([tensor, pad])
    with warnings.catch_warnings():
        # Deprecated in favour of _functional_collectives.all_gather_single, whose backward needs
        # reduce_scatter, which the gloo (CPU) backend lacks; this one works on every backend.
        warnings.simplefilter("ignore", FutureWarning)
        parts = all_gather(tensor.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])


def gather_batch(
    reps: list[torch.Tensor], negative_owner: torch.Tensor | None = None
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Gather per-group embeddings (anchors, positives[, negatives]) of the global batch.

    Args:
        reps: This process's ``(n_r, d)`` embeddings per group; ``reps[0]`` are the anchors.
        negative_owner: Local anchor index of each row of ``reps[2]`` (or ``None``).

    Returns:
        The global groups, and the owners re-indexed into the global anchor order.
    """
    if not is_distributed():
        return reps, negative_owner
    out = [gather_with_grad(r) for r in reps]
    if negative_owner is None:
        return out, None
    local = torch.tensor([reps[0].shape[0]], device=reps[0].device)
    offset = torch.cumsum(gather_with_grad(local), 0)[rank()] - local[0]
    return out, gather_with_grad(negative_owner + offset)


def average_gradients(model: torch.nn.Module) -> None:
    """Average parameter gradients over processes (after ``backward``, before clipping/step).

    A plain all-reduce per parameter instead of wrapping the model in DDP, so the encoder keeps
    its own ``save_pretrained`` / attribute layout; fine at SimCSE model sizes.
    """
    if not is_distributed():
        return
    import torch.distributed as dist

    params = [p for p in model.parameters() if p.requires_grad]
    for param in params:  # unused on this rank: contribute zeros so the sum stays aligned
        if param.grad is None:
            param.grad = torch.zeros_like(param)
    flat = torch.cat([p.grad.reshape(-1) for p in params])  # one collective, not one per tensor
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(dist.get_world_size())
    start = 0
    for param in params:
        n = param.grad.numel()
        param.grad.copy_(flat[start : start + n].view_as(param.grad))
        start += n
