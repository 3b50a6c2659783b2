"""One runner for every task: :func:`run` trains any registered task into a run folder, new or
``--resume``d, with progress, signals and DDP under ``torchrun``.

    summary = run(TASKS["tag"], config, "runs/cws")

The steps are the same for every task: lock the run folder (:class:`RunFolder`), read the last
checkpoint on resume, let the task read its data (:attr:`TaskSpec.prepare`), build the model on the meta
device and check it (:func:`build_checked`), commit the folder, and train (:func:`fit`). Under DDP
(``torchrun``: the process group is already joined, see :mod:`rnnkit.train.distributed`) each rank
prepares the same task and trains on its share of every batch; rank 0 alone writes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit.train import distributed
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import STAGES, has_checkpoint, load_checkpoint
from rnnkit.train.config import TrainConfig
from rnnkit.train.rundir import RunFolder
from rnnkit.train.task import Setup, Stage, Task, TaskSpec

log = logging.getLogger("rnnkit")


def placement() -> tuple[int, int]:
    """``(rank, world_size)``: from the process group when one is joined (torchrun), else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    distributed.barrier(placement()[1])


def from_rank0(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (itself in one process); a collective: every rank calls it."""
    if placement()[1] == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def run(
    spec: TaskSpec,
    config: Any,
    out: Path,
    *,
    force: bool = False,
    resume: bool = False,
    progress: bool = False,
    on_step=None,
) -> dict:
    """Train ``spec``'s task with ``config`` into the run folder ``out``; returns the trainer's summary
    (``step``, ``stopped``, the last validation metrics, ``run_dir``, ``parameters``...).

    With ``resume``, ``out`` must be a run folder and ``config`` its saved config with any training
    settings changed. ``on_step(trainer)`` is called after every step (tests use it to interrupt).
    """
    out = Path(out)
    rank, world_size = placement()
    with RunFolder(out, force=force, resume=resume, rank=rank) as folder:
        resumed, where = _last_checkpoint(out, spec.name) if resume else (None, out)
        task = spec.prepare(config, Setup(out, resumed, folder, rank, world_size))
        task.rank, task.world_size = rank, world_size
        barrier()  # every rank has read its data (staged files included) before rank 0 commits
        torch.manual_seed(config.train.seed)
        model = build_checked(lambda: spec.build_model(task), checkpoint=resumed if where == out else None)
        if resumed is not None:
            log.info("resuming %s from %s", out, resumed.name)
        folder.commit()  # a new run's folder is its own from here (staged files move in)
        summary: dict = {}
        stages = task.stages(model)
        for index, stage in enumerate(stages):
            here = _folder(out, stage)
            if resume and any(has_checkpoint(_folder(out, later)) for later in stages[index + 1 :]):
                continue  # finished before the run stopped
            if stage.note:
                log.info("%s", stage.note)
            here.mkdir(exist_ok=True)
            going_on = resume and has_checkpoint(here)
            stage.task.rank, stage.task.world_size = rank, world_size
            summary = fit(stage.model, stage.task, stage.train, here, resume=going_on, progress=progress,
                          on_step=on_step)  # fmt: skip
            if summary.get("stopped") not in (None, "done"):
                break
        return summary


def _folder(out: Path, stage: Stage) -> Path:
    return out / stage.folder if stage.folder else out


def _last_checkpoint(out: Path, task: str):
    """A resumed run's last checkpoint: of the run folder, or of the earlier stage it stopped in."""
    for where in (out, *(out / stage for stage in STAGES)):
        if has_checkpoint(where):
            return load_checkpoint(where, "last", task=task), where
    return load_checkpoint(out, "last", task=task), out  # raises the one-line reason


def fit(
    model: nn.Module,
    task: Task,
    config: TrainConfig,
    out: Path,
    *,
    resume: bool = False,
    progress: bool = False,
    on_step=None,
) -> dict:
    """Train ``model`` on ``task`` into the committed run folder ``out`` (continuing its last
    checkpoint when ``resume``); the trainer's summary with the run folder and the parameter count.

    :func:`run` calls it once; a task with stages of its own (the classifier's pre-training) calls it
    for each stage, each into its own folder."""
    from rnnkit.train.trainer import Trainer

    rank, world_size = placement()
    trainer = Trainer(
        model, task, config, out, rank=rank, world_size=world_size, progress=progress, on_step=on_step
    )
    if resume:
        trainer.resume("last")
        trainer.trim_metrics()
    params = sum(p.numel() for p in model.parameters())
    what = task.describe_model()
    log.info(
        "model: %s%s parameters, %s on %s%s",
        f"{what}, " if what else "",
        f"{params:,}",
        trainer.precision,
        trainer.device,
        f", {world_size} processes" if world_size > 1 else "",
    )
    summary = trainer.fit()
    summary.update(
        run_dir=str(out), parameters=params, precision=trainer.precision, device=str(trainer.device)
    )
    return summary


def train(spec: TaskSpec, config: Any, out: Path, **options) -> dict:
    """What ``rnnkit <task> train`` runs: :func:`run`, or the task's own entry when it trains several
    runs (:attr:`TaskSpec.train`, an ensemble's members: each one through :func:`run`)."""
    if spec.train is not None:
        return spec.train(config, out, **options)
    return run(spec, config, out, **options)
