"""Where and in what precision training runs: the device, native bf16 on this CPU, autocast, and
moving a batch to the device."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from rnnkit.errors import UsageError

        raise UsageError("--device: CUDA was asked for but no CUDA device is available")
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AMX or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` is bf16 where the hardware computes it natively, fp32 elsewhere.

    On a CPU without AVX512-BF16 or AMX, oneDNN has no bf16 LSTM kernel at all (the fused call fails),
    so an explicit ``bf16`` there is refused with a clear message rather than crashing mid-run.
    """
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    if name == "auto":
        return "bf16" if native else "fp32"
    if name == "bf16" and not native:
        from rnnkit.errors import UsageError

        where = "GPU" if device.type == "cuda" else "CPU (it lacks AVX512-BF16 and AMX)"
        raise UsageError(f"--precision bf16: this {where} has no native bf16 kernels; use fp32")
    return name


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch with every tensor in it on ``device`` (tuples, named tuples, lists and dicts walked)."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple):
        items = [to_device(b, device) for b in batch]
        return type(batch)(*items) if hasattr(batch, "_fields") else tuple(items)
    if isinstance(batch, list):
        return [to_device(b, device) for b in batch]
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch
