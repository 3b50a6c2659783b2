"""Running under ``torchrun``: one process per rank, PyTorch DDP, gloo on CPU and NCCL on CUDA.

``torchrun --nproc-per-node N -m rnnkit train ...`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`from_environment` reads them, joins the process group and
leaves it at the end. Outside torchrun it does nothing and reports rank 0 of 1.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Placement:
    rank: int
    world_size: int
    device: str


@contextlib.contextmanager
def from_environment(device: str) -> Iterator[Placement]:
    """Join the process group torchrun describes; the device becomes ``cuda:LOCAL_RANK`` on GPUs."""
    from rnnkit.errors import UsageError
    from rnnkit.train.hardware import resolve_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield Placement(0, 1, device)
        return
    try:
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise UsageError("WORLD_SIZE is set but RANK is not: launch with torchrun") from None
    import torch.distributed as dist

    if resolve_device(device).type == "cuda":
        torch.cuda.set_device(local)
        device, backend = f"cuda:{local}", "nccl"
    else:
        device, backend = "cpu", "gloo"
    dist.init_process_group(backend)
    try:
        yield Placement(rank, world, device)
        # leave together: a rank that tears the group down while another still uses it aborts that
        # one (seen as SIGABRT under gloo); after an error torchrun stops the others instead
        dist.barrier()
    finally:
        dist.destroy_process_group()


# the few collectives the trainer needs beyond DDP's own gradient all-reduce (gloo on CPU, NCCL on GPUs)


def _comm_device(device: torch.device) -> torch.device:
    return device if device.type == "cuda" else torch.device("cpu")


def barrier(world_size: int) -> None:
    if world_size > 1:
        torch.distributed.barrier()


def all_gather(world_size: int, device: torch.device, tensor: Tensor) -> list[Tensor]:
    """Every rank's ``tensor`` (the same shape on each), in rank order."""
    local = tensor.to(_comm_device(device)).contiguous()
    parts = [torch.empty_like(local) for _ in range(world_size)]
    torch.distributed.all_gather(parts, local)
    return [part.to(tensor.device) for part in parts]


def gather_rows(
    world_size: int, device: torch.device, tensors: dict[str, Tensor], dim: int
) -> dict[str, Tensor]:
    """Join each rank's rows of the carried state, so a checkpoint holds the global batch's state."""
    if world_size == 1:
        return tensors
    return {key: torch.cat(all_gather(world_size, device, t), dim=dim) for key, t in tensors.items()}


def mean_over_ranks(world_size: int, device: torch.device, *values: float) -> list[float]:
    """The mean of each value over the ranks: every rank then takes the same decisions."""
    if world_size == 1:
        return list(values)
    packed = torch.tensor(values, dtype=torch.float64, device=_comm_device(device))
    torch.distributed.all_reduce(packed)
    return (packed / world_size).tolist()


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
"""torch's public batch-norm classes (their common base is private)."""


class GlobalBatchNorm(nn.Module):
    """Batch normalisation over the global batch under DDP on any device: the ranks' sums and sums of
    squares are added (a differentiable all-reduce), so every rank normalises, and updates its running
    statistics, as one process over the whole batch would. ``torch.nn.SyncBatchNorm`` does this on
    GPUs only; this one also runs on CPUs (gloo).

    A mixin: :func:`global_batch_norm` puts it before a batch-norm class, which gives the attributes
    declared here and the ``forward`` that ``super()`` reaches."""

    running_mean: Tensor | None
    running_var: Tensor | None
    num_batches_tracked: Tensor | None
    momentum: float | None
    eps: float
    affine: bool
    track_running_stats: bool
    weight: Tensor
    bias: Tensor

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [d for d in range(x.dim()) if d != 1]
        xf = x.float()  # the statistics in fp32 under bf16 autocast too, as torch's batch norm keeps them
        count = torch.tensor([float(x.numel() // x.shape[1])], device=x.device)
        total = all_reduce(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))
        n, channels = total[-1], x.shape[1]
        mean = total[:channels] / n
        var = (total[channels : 2 * channels] / n - mean * mean).clamp_min(0)
        # the three buffers are None together, when track_running_stats was off at construction
        running_mean, running_var, tracked = self.running_mean, self.running_var, self.num_batches_tracked
        if (
            self.track_running_stats
            and running_mean is not None
            and running_var is not None
            and tracked is not None
        ):
            with torch.no_grad():
                tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(tracked)
                running_mean.lerp_(mean.detach().to(running_mean.dtype), m)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                running_var.lerp_(unbiased.to(running_var.dtype), m)
        shape = [1, channels] + [1] * (x.dim() - 2)
        out = (x - mean.view(shape).to(x.dtype)) * torch.rsqrt(var.view(shape) + self.eps).to(x.dtype)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


_GLOBAL: dict[type, type] = {}


def global_batch_norm(model: nn.Module) -> nn.Module:
    """``model`` with every batch-norm layer normalising over the global batch (the same modules,
    parameters and buffers; their class gains :class:`GlobalBatchNorm`'s forward): DDP then equals one
    process whatever each rank's share of a batch."""
    for module in model.modules():
        kind = type(module)
        if isinstance(module, _BATCH_NORMS) and not isinstance(module, GlobalBatchNorm):
            if kind not in _GLOBAL:
                _GLOBAL[kind] = type(f"Global{kind.__name__}", (GlobalBatchNorm, kind), {})
            module.__class__ = _GLOBAL[kind]
    return model
