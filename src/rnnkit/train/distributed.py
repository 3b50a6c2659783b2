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


@dataclass(frozen=True)
class Placement:
    rank: int
    world_size: int
    device: str


@contextlib.contextmanager
def from_environment(device: str) -> Iterator[Placement]:
    """Join the process group torchrun describes; the device becomes ``cuda:LOCAL_RANK`` on GPUs."""
    from rnnkit.errors import UsageError
    from rnnkit.train.trainer import resolve_device

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
