"""The tasks, one module each (its configs, model, data, metrics, task class and loaded model), and the
registry that finds a run's task: ``rnnkit.load(run_dir)`` returns any trained run's loaded model.

A task module is imported only when a run of it is loaded: each pulls in its own data readers.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from rnnkit.errors import CheckpointError
from rnnkit.train.task import TaskSpec


class _Registry(Mapping[str, TaskSpec]):
    """Task name -> :class:`TaskSpec`; a task's module is imported on first use (each pulls in its
    own data readers)."""

    NAMES = ("lm", "classify", "tag", "forecast", "speech", "caption")
    MODULES: ClassVar[dict[str, str]] = {name: f"rnnkit.tasks.{name}" for name in NAMES}

    added: ClassVar[dict[str, TaskSpec]] = {}
    """Tasks registered from outside rnnkit (:func:`register`)."""

    def __getitem__(self, name: str) -> TaskSpec:
        if name in self.added:
            return self.added[name]
        if name not in self.MODULES:
            raise KeyError(name)
        return importlib.import_module(self.MODULES[name]).SPEC

    def __iter__(self) -> Iterator[str]:
        return iter({**self.MODULES, **self.added})

    def __len__(self) -> int:
        return len({**self.MODULES, **self.added})


TASKS: Mapping[str, TaskSpec] = _Registry()
"""Every task by the name its checkpoints record in ``config.json`` (``task``)."""


def register(spec: TaskSpec) -> TaskSpec:
    """Make a task of your own known to ``rnnkit.load`` (and to ``TASKS``); see docs/architecture.md."""
    if spec.name in _Registry.MODULES:
        raise ValueError(f"{spec.name!r}: a task of rnnkit has this name; choose another")
    _Registry.added[spec.name] = spec
    return spec


def task_of(run_dir: Path, which: str = "best") -> str:
    """The task a run folder holds, from its checkpoint's config (or its ensemble record), read and
    checked as every checkpoint file is; the weights are not read."""
    from rnnkit.train.checkpoint import load_checkpoint

    run_dir = Path(run_dir)
    ensemble = importlib.import_module(_Registry.MODULES["classify"])  # the one task with ensembles
    if ensemble.is_ensemble(run_dir):
        name = ensemble.read_ensemble(run_dir)["task"]  # checked there: a classifier ensemble
    else:
        name = load_checkpoint(run_dir, which).config.get("task")
    if name not in TASKS:
        raise CheckpointError(f"{run_dir}: a checkpoint of task {name!r}, which this rnnkit does not know")
    return name


def load_run(
    run_dir: Path, which: str = "best", device: str = "cpu", *, task: str | None = None, **options: Any
) -> Any:
    """The loaded model of any trained run: ``LoadedLM``, ``LoadedClassifier`` (or ``LoadedEnsemble``),
    ``LoadedTagger``, ``LoadedForecaster``, ``LoadedSpeech`` or ``LoadedCaptioner``, whichever task the
    run folder holds (``task``: the one it must hold, else a one-line checkpoint error; ``options``: the
    task's own, such as the captioner's ``backbone``). A run folder from someone else is read as
    docs/reliability.md says. The command line and the server load every run through here."""
    name = task if task is not None else task_of(run_dir, which)
    return TASKS[name].load(Path(run_dir), which, device=device, **options)


__all__ = ["TASKS", "TaskSpec", "load_run", "register", "task_of"]
