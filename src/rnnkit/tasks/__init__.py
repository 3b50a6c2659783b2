"""The tasks, one module each (its configs, model, data, metrics, task class and loaded model), and the
registry that finds a run's task: ``rnnkit.load(run_dir)`` returns any trained run's loaded model.

A task module is imported only when a run of it is loaded: each pulls in its own data readers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnkit.errors import CheckpointError


@dataclass(frozen=True)
class TaskSpec:
    """A task as the registry knows it: where it lives and how a trained run of it is loaded."""

    name: str
    module: str
    """The task's module, imported on first use."""
    loader: str
    """The module's function ``(run_dir, which) -> loaded model`` (with ``device=`` when it takes one)."""
    takes_device: bool = True

    def load(self, run_dir: Path, which: str = "best", device: str = "cpu") -> Any:
        load = getattr(importlib.import_module(self.module), self.loader)
        return load(Path(run_dir), which, device=device) if self.takes_device else load(Path(run_dir), which)


TASKS: dict[str, TaskSpec] = {
    "lm": TaskSpec("lm", "rnnkit.tasks.lm", "load_lm"),
    "classify": TaskSpec("classify", "rnnkit.tasks.classify", "load_classifier"),
    "tag": TaskSpec("tag", "rnnkit.tasks.tag", "load_tagger"),
    "forecast": TaskSpec("forecast", "rnnkit.tasks.forecast", "load_forecaster", takes_device=False),
    "speech": TaskSpec("speech", "rnnkit.tasks.speech", "load_speech"),
    "caption": TaskSpec("caption", "rnnkit.tasks.caption", "load_captioner"),
}
"""Every task by the name its checkpoints record in ``config.json`` (``task``)."""


def task_of(run_dir: Path, which: str = "best") -> str:
    """The task a run folder holds, from its checkpoint's config (or its ensemble record), read and
    checked as every checkpoint file is; the weights are not read."""
    from rnnkit.train.checkpoint import load_checkpoint

    run_dir = Path(run_dir)
    ensemble = importlib.import_module(TASKS["classify"].module)  # the one task with ensembles
    if ensemble.is_ensemble(run_dir):
        name = ensemble.read_ensemble(run_dir)["task"]  # checked there: a classifier ensemble
    else:
        name = load_checkpoint(run_dir, which).config.get("task")
    if name not in TASKS:
        raise CheckpointError(f"{run_dir}: a checkpoint of task {name!r}, which this rnnkit does not know")
    return name


def load_run(run_dir: Path, which: str = "best", device: str = "cpu") -> Any:
    """The loaded model of any trained run: ``LoadedLM``, ``LoadedClassifier`` (or ``LoadedEnsemble``),
    ``LoadedTagger``, ``LoadedForecaster``, ``LoadedSpeech`` or ``LoadedCaptioner``, whichever task the
    run folder holds. A run folder from someone else is read as docs/reliability.md says."""
    return TASKS[task_of(run_dir, which)].load(run_dir, which, device)


__all__ = ["TASKS", "TaskSpec", "load_run", "task_of"]
