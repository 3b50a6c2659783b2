"""Building a model from a config that may be absurd (a typo'd flag) or hostile (a run folder from
someone else), without running out of memory.

The model is first built on PyTorch's ``meta`` device, which records shapes and allocates nothing, while
a registration hook counts every parameter and buffer and stops the build once it passes a bound: the
tensors the checkpoint's weights file holds (so ``num_layers = 1000000`` in a tampered config.json stops
after a few layers) or, for a new model, what the machine's free memory can train. Only a model shown
to fit (the exact names and shapes of the safetensors header, or the memory) is then built for real,
and an allocation that still fails is reported in one line.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Callable, Iterator
from math import prod
from typing import TypeVar

import torch
from torch import nn
from torch.nn.modules import module as module_hooks

from rnnkit.errors import CheckpointError, UsageError
from rnnkit.train.checkpoint import Checkpoint

M = TypeVar("M", bound=nn.Module)
TRAINING_BYTES_PER_PARAMETER = 16
"""fp32 weights, their gradients and AdamW's two moments: what training holds per parameter at least."""
MAX_TENSORS = 100_000
"""No rnnkit model has this many parameter tensors (a 100-layer bidirectional LSTM has 800)."""


class _TooLarge(Exception):
    pass


@contextlib.contextmanager
def _bounded(max_tensors: int, max_numel: int | None) -> Iterator[dict[str, int]]:
    """Count the parameters and buffers that modules register; raise :class:`_TooLarge` past a bound."""
    seen = {"tensors": 0, "numel": 0}

    def hook(module: nn.Module, name: str, tensor: torch.Tensor | None) -> None:
        if tensor is None:
            return
        seen["tensors"] += 1
        seen["numel"] += tensor.numel()
        if seen["tensors"] > max_tensors or (max_numel is not None and seen["numel"] > max_numel):
            raise _TooLarge

    handles = [
        module_hooks.register_module_parameter_registration_hook(hook),
        module_hooks.register_module_buffer_registration_hook(hook),
    ]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def meta_shapes(build: Callable[[], nn.Module], max_tensors: int, max_numel: int | None = None):
    """The state-dict shapes ``build()`` gives, found on the meta device (nothing allocated); None when
    it registers more than ``max_tensors`` tensors or ``max_numel`` elements."""
    try:
        with torch.device("meta"), _bounded(max_tensors, max_numel):
            model = build()
    except (_TooLarge, OverflowError):
        return None
    except RuntimeError as exc:  # sizes past what a tensor can hold (2**63 elements)
        if "overflow" in str(exc).lower() or "too large" in str(exc).lower():
            return None
        raise
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def available_memory() -> int | None:
    """Bytes this process may still allocate: the kernel's MemAvailable, under an address-space limit."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as handle:
                used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            used = 0
        found.append(max(soft - used, 0))
    return min(found) if found else None


def _gigabytes(n: int) -> str:
    return f"{n / 2**30:,.1f} GB"


def _real_build(build: Callable[[], M], error: type[Exception], where: str) -> M:
    try:
        return build()
    except MemoryError:
        raise error(f"{where}: the model does not fit in memory") from None
    except RuntimeError as exc:
        if "alloc" not in str(exc).lower():
            raise
        raise error(f"{where}: the model does not fit in memory ({str(exc).splitlines()[0]})") from None


def build_checked(build: Callable[[], M], *, checkpoint: Checkpoint | None = None) -> M:
    """``build()``, once its model is shown to fit: the weights of ``checkpoint`` exactly (names and
    shapes, else :class:`CheckpointError`), or for a new model the memory training it needs (else
    :class:`UsageError` naming the size)."""
    if checkpoint is not None:
        where = f"{checkpoint.folder}/config.json"
        expected = checkpoint.shapes
        total = sum(prod(shape) for shape in expected.values())
        # a little room for buffers a model keeps out of its state dict
        found = meta_shapes(build, 2 * len(expected) + 16, 2 * total + 2**20)
        if found != expected:
            detail = (
                "more tensors than the weights file holds" if found is None else _difference(found, expected)
            )
            raise CheckpointError(
                f"{where}: describes a model that does not fit model.safetensors ({detail})"
            )
        need = 2 * checkpoint.model_bytes  # the file's bytes and the model's tensors, both in memory
        free = available_memory()
        if free is not None and need > free:
            raise CheckpointError(
                f"{checkpoint.folder}/model.safetensors: loading it needs about {_gigabytes(need)}, more "
                f"than the {_gigabytes(free)} free here"
            )
        return _real_build(build, CheckpointError, where)
    found = meta_shapes(build, MAX_TENSORS)
    if found is None:
        raise UsageError(
            f"the model is too large to build (more than {MAX_TENSORS:,} parameter tensors, or a tensor "
            "past 2**63 elements): choose a smaller --hidden-size or --num-layers"
        )
    numel = sum(prod(shape) for shape in found.values())
    need = numel * TRAINING_BYTES_PER_PARAMETER
    free = available_memory()
    if free is not None and need > free:
        raise UsageError(
            f"the model has {numel:,} parameters; training it needs about "
            f"{_gigabytes(need)}, more than the {_gigabytes(free)} free here: choose a smaller "
            "--hidden-size or --num-layers"
        )
    return _real_build(build, UsageError, "model")


def _difference(found: dict, expected: dict) -> str:
    for key in sorted(set(found) | set(expected)):
        if key not in expected:
            return f"{key} is not in the weights file"
        if key not in found:
            return f"the weights file's {key} is not in the model"
        if found[key] != expected[key]:
            return f"{key}: {list(found[key])} in config.json, {list(expected[key])} in the weights"
    return "different tensors"
