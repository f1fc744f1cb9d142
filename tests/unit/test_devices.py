from __future__ import annotations

import pytest
import torch

from simcse_rag.devices import DTYPES, resolve_device, resolve_dtype

CPU = torch.device("cpu")


def test_device_names_resolve_and_none_picks_what_is_there() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device(CPU) == CPU
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_unknown_device_is_named_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"Unknown device 'gpu0'; use 'cpu'"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cuda_without_cuda_is_refused() -> None:
    with pytest.raises(ValueError, match="CUDA is not available; use 'cpu'"):
        resolve_device("cuda")


def test_dtype_names_and_default() -> None:
    assert resolve_dtype(None, CPU) is torch.float32
    assert resolve_dtype("bf16", CPU) is torch.bfloat16
    assert resolve_dtype(torch.bfloat16, CPU) is torch.bfloat16
    assert {DTYPES[name] for name in ("float32", "fp32")} == {torch.float32}


def test_unknown_dtype_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="Unknown dtype 'int8'; choose one of: float32, fp32"):
        resolve_dtype("int8", CPU)


@pytest.mark.parametrize("dtype", ["float16", "fp16", torch.float16])
def test_float16_needs_cuda(dtype: str | torch.dtype) -> None:
    with pytest.raises(ValueError, match="float16 needs a CUDA device"):
        resolve_dtype(dtype, CPU)
