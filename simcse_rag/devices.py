"""Where and in which precision a model runs: device and dtype names resolved for PyTorch."""

from __future__ import annotations

import torch

__all__ = ["DTYPES", "resolve_device", "resolve_dtype"]

#: Accepted dtype names and the torch dtype each means.
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device for ``device``.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a :class:`torch.device`; ``None`` picks
            CUDA when available, else CPU.

    Raises:
        ValueError: An unknown device, or CUDA asked for where it is not available.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {device!r} requested but CUDA is not available; use 'cpu'.")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The torch dtype for ``dtype`` on ``device``.

    Args:
        dtype: A name from :data:`DTYPES` or a torch dtype; ``None`` means float32.
        device: The device the weights will live on.

    Raises:
        ValueError: An unknown name, or float16 on a device other than CUDA.
    """
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"Unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}.")
        dtype = DTYPES[dtype]
    if dtype == torch.float16 and device.type != "cuda":
        raise ValueError("dtype float16 needs a CUDA device; use float32 (or bfloat16) on CPU.")
    return dtype
