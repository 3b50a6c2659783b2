"""Ensembles (``members`` > 1): members trained one after another in ``member-1``, ``member-2``, ...
of the run folder, the ``ensemble.json`` record, and the loaded ensemble that averages them."""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from rnnkit.config import to_dict
from rnnkit.errors import CheckpointError, UsageError
from rnnkit.tasks.classify.config import TASK, ClassifierConfig
from rnnkit.tasks.classify.metrics import classify_texts, score_file
from rnnkit.tasks.classify.pretrain import stopped_in_pretraining
from rnnkit.train.checkpoint import (
    ENSEMBLE_FILE,
    FORMAT_VERSION,
    atomic_write_json,
    has_checkpoint,
    read_metrics,
)
from rnnkit.train.run import barrier, from_rank0, placement
from rnnkit.train.run import run as run_task
from rnnkit.train.rundir import RunFolder
from rnnkit.train.safefiles import read_json_file
from rnnkit.train.task import TaskSpec
from rnnkit.train.trainer import describe_budget

if TYPE_CHECKING:  # annotations only: task.py imports this module
    from rnnkit.tasks.classify.task import LoadedClassifier

log = logging.getLogger("rnnkit")


def member_names(count: int) -> list[str]:
    return [f"member-{i}" for i in range(1, count + 1)]


USEFUL_MEMBER_STEPS = 200
"""An ensemble member trained fewer steps than this is warned about (on ChnSentiCorp, the members of
the 20-minute ensemble that reached 0.89 trained 550-580 steps each, and one classifier peaked at 600)."""


def member_config(config: ClassifierConfig, index: int) -> ClassifierConfig:
    """Member ``index`` (0-based) of an ensemble: its own seed and its share of the time budget."""
    k, t, p = config.members, config.train, config.pretrain
    return replace(
        config,
        members=1,
        train=replace(t, seed=t.seed + index, max_minutes=t.max_minutes / k),
        pretrain=replace(p, minutes=p.minutes / k),
    )


def has_started(run_dir: Path) -> bool:
    return has_checkpoint(run_dir) or stopped_in_pretraining(run_dir)


def train_ensemble(
    spec: TaskSpec,
    config: ClassifierConfig,
    out: Path,
    *,
    force: bool,
    resume: bool,
    progress: bool,
    on_step=None,
) -> dict:
    """Train the members one after another (a resumed run goes on from the member it stopped in), each
    through the one runner with the classifier's ``spec``; under DDP every rank trains every member and
    rank 0 alone writes."""
    rank = placement()[0]
    with RunFolder(out, force=force, resume=resume, rank=rank) as run:
        return _train_members(spec, config, out, run, resume, progress, rank, on_step)


def _train_members(spec, config, out: Path, run: RunFolder, resume: bool, progress: bool, rank: int, on_step):
    names = member_names(config.members)
    if resume:
        saved = read_ensemble(out)
        if saved["members"] != names:
            raise UsageError(
                f"--resume: {out} is an ensemble of {len(saved['members'])}; members cannot change"
            )
    run.commit()
    if rank == 0:  # written first, so that a run stopped in its first member is resumable as an ensemble
        record = {"format_version": FORMAT_VERSION, "task": TASK, "members": names, "config": to_dict(config)}
        atomic_write_json(out / ENSEMBLE_FILE, record)
    found: list[dict] = []
    for index, name in enumerate(names):
        log.info("ensemble member %d of %d (seed %d) in %s", index + 1, len(names),
                 config.train.seed + index, out / name)  # fmt: skip
        folder = out / name
        going_on = from_rank0(resume and has_started(folder))  # decided once, before rank 0 changes it
        if rank == 0 and resume and not going_on and folder.exists():
            shutil.rmtree(folder)  # a member that crashed before its first checkpoint starts afresh
        barrier()
        member = member_config(config, index)
        summary = run_task(spec, member, folder, resume=going_on, progress=progress, on_step=on_step)
        if summary.get("stopped") not in (None, "done"):
            return summary
        best = max((r for r in read_metrics(folder) if "val_accuracy" in r), key=lambda r: r["val_accuracy"])
        log.info("member %d: best validation accuracy %.4f (step %d)", index + 1, best["val_accuracy"],
                 best["step"])  # fmt: skip
        if summary["step"] < USEFUL_MEMBER_STEPS:
            log.warning(
                "warning: member %d trained only %d steps (its share of the budget: %s); a member needs a "
                "few hundred to be worth averaging: give a larger --max-minutes or fewer --members",
                index + 1, summary["step"], describe_budget(member_config(config, index).train),
            )  # fmt: skip
        found.append({"step": summary["step"], **{k: v for k, v in best.items() if k.startswith("val_")}})
    summary = {
        "stopped": "done",
        "members": found,
        "step": sum(m["step"] for m in found),
        "val_accuracy": sum(m["val_accuracy"] for m in found) / len(found),
        "val_macro_f1": sum(m["val_macro_f1"] for m in found) / len(found),
    }
    if config.data.val and rank == 0:  # one validation file for all: the ensemble can be scored on it
        d = config.data
        result = score_file(spec.load(out), Path(d.val), d.text_column, d.label_column, d.encoding)
        summary |= {"ensemble_val_accuracy": result["accuracy"], "ensemble_val_macro_f1": result["macro_f1"]}
        log.info("the ensemble on %s: accuracy %.4f, macro-F1 %.4f", config.data.val, result["accuracy"],
                 result["macro_f1"])  # fmt: skip
    return summary


def read_ensemble(run_dir: Path) -> dict:
    """An ensemble run's ``ensemble.json``, checked; a one-line error when it is not one."""
    path = Path(run_dir) / ENSEMBLE_FILE
    if not os.path.lexists(path):
        raise CheckpointError(f"{run_dir}: no {ENSEMBLE_FILE} (not an ensemble run folder)")
    record = read_json_file(path, "ensemble record")
    try:
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        names, config = record["members"], record["config"]
        if record.get("task") != TASK or not isinstance(names, list) or not isinstance(config, dict):
            raise ValueError("not a classifier ensemble")
        if not all(isinstance(n, str) and re.fullmatch(r"member-[0-9]+", n) for n in names):
            raise ValueError("member names must be member-1, member-2, ...")
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a classifier ensemble record ({exc})") from None
    return record


def ensemble_config(run_dir: Path, record: dict) -> ClassifierConfig:
    """The whole ensemble's config in its :func:`read_ensemble` record."""
    from rnnkit.config import from_dict

    try:
        return from_dict(ClassifierConfig, record["config"])
    except (TypeError, ValueError, UsageError) as exc:
        raise CheckpointError(f"{Path(run_dir) / ENSEMBLE_FILE}: not a classifier config ({exc})") from None


def is_ensemble(run_dir: Path) -> bool:
    return (Path(run_dir) / ENSEMBLE_FILE).is_file()


@dataclass
class LoadedEnsemble:
    """Classifiers whose averaged probabilities are the prediction; the same interface as one
    (``classify(texts) -> list[dict]``, ``predict(texts) -> Tensor``; see :class:`LoadedClassifier`)."""

    members: list[LoadedClassifier]
    labels: list[str]
    config: ClassifierConfig
    checkpoint: str

    @property
    def kind(self) -> str:
        return self.members[0].kind

    def predict(self, texts: list[str]) -> Tensor:
        """Class probabilities ``(N, C)``: the mean of the members' (a label a member never saw: 0)."""
        total = torch.zeros(len(texts), len(self.labels))
        for member in self.members:
            columns = [self.labels.index(label) for label in member.labels]
            total[:, columns] += member.predict(texts)
        return total / len(self.members)

    def classify(self, texts: list[str]) -> list[dict]:
        """Each text's label and every label's probability, from the averaged members:
        :func:`~rnnkit.tasks.classify.metrics.classify_texts`."""
        return classify_texts(self, texts)
