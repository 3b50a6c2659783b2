"""The one runner and the registry, seen from a task written only against the documented contract
(docs/architecture.md): it trains, resumes and loads through ``run`` / ``load_run`` like rnnkit's own."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.tasks import TASKS, load_run, register
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import load_weights, task_config
from rnnkit.train.config import TrainConfig
from rnnkit.train.run import run
from rnnkit.train.task import Setup, Task, TaskSpec


@dataclass
class LineData:
    slope: float = 3.0
    rows: int = 64


@dataclass
class LineConfig:
    data: LineData = field(default_factory=LineData)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            batch_size=8,
            lr=0.2,
            warmup_steps=0,
            max_steps=30,
            eval_interval=10,
            checkpoint_interval=5,
            device="cpu",
            precision="fp32",
            schedule="constant",
        )
    )


class LineTask(Task):
    """Fit y = slope * x on a fixed table of rows, a batch at a time, in order."""

    name = "line"

    def __init__(self, config: LineConfig) -> None:
        self.config = config
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(config.data.rows, 1, generator=gen)
        self.y = config.data.slope * self.x
        self.index = 0

    def next_batch(self):
        b = self.config.train.batch_size * self.world_size
        rows = [(self.index * b + i) % len(self.x) for i in range(b)]
        self.index += 1
        mine = self.shard(rows)
        return (self.x[mine], self.y[mine], self.share(len(mine), len(rows))), False

    def training_loss(self, model, batch, carry):
        x, y, share = batch
        return nn.functional.mse_loss(model(x), y) * share, None, len(x)

    def evaluate(self, model):
        return {"val_loss": float(nn.functional.mse_loss(model(self.x), self.y))}

    def data_state(self):
        return {"index": self.index}

    def load_data_state(self, state):
        self.index = state["index"]

    def checkpoint_extras(self):
        return {"rows": len(self.x)}


@dataclass
class LoadedLine:
    model: nn.Module
    config: LineConfig

    def predict(self, x: list[float]) -> list[float]:
        with torch.no_grad():
            return self.model(torch.tensor(x)[:, None])[:, 0].tolist()


def load_line(run_dir: Path, which: str = "best", device: str = "cpu") -> LoadedLine:
    loaded, config = task_config(run_dir, which, "line", LineConfig, "a line")
    model = build_checked(lambda: nn.Linear(1, 1), checkpoint=loaded)
    load_weights(model, loaded)
    return LoadedLine(model.to(device).eval(), config)


def prepare(config: LineConfig, setup: Setup) -> LineTask:
    return LineTask(config)


SPEC = TaskSpec(
    name="line", config=LineConfig, prepare=prepare, build_model=lambda task: nn.Linear(1, 1),
    load=load_line, loaded=LoadedLine,
)  # fmt: skip


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_line(run_dir, "last").model.state_dict()


def test_a_task_of_ones_own_trains_resumes_and_loads_through_the_one_runner(tmp_path):
    summary = run(SPEC, LineConfig(), tmp_path / "straight")
    assert summary["step"] == 30 and summary["stopped"] == "done"
    assert summary["val_loss"] < 0.5 * LineConfig().data.slope ** 2  # it learnt something of the slope
    saved = json.loads(next((tmp_path / "straight").glob("ckpt-*/config.json")).read_text())
    assert (saved["format_version"], saved["task"], saved["rows"]) == (1, "line", 64)  # the trainer's keys
    assert saved["config"]["data"] == {"slope": 3.0, "rows": 64}

    def interrupt(trainer):
        if trainer.step == 12:
            os.kill(os.getpid(), signal.SIGINT)

    stopped = run(SPEC, LineConfig(), tmp_path / "broken", on_step=interrupt)
    assert stopped["stopped"] == "SIGINT" and stopped["step"] == 12
    done = run(SPEC, LineConfig(), tmp_path / "broken", resume=True)
    assert done["step"] == 30
    for key, value in weights(tmp_path / "straight").items():
        torch.testing.assert_close(weights(tmp_path / "broken")[key], value, rtol=0, atol=0)

    with pytest.raises(Exception, match="does not know"):
        load_run(tmp_path / "straight")  # not registered yet: a one-line checkpoint error
    register(SPEC)
    try:
        assert "line" in TASKS and TASKS["line"] is SPEC
        loaded = rnnkit.load(tmp_path / "straight")
        assert isinstance(loaded, LoadedLine)
        assert loaded.predict([1.0, -2.0]) == load_line(tmp_path / "straight").predict([1.0, -2.0])
        with pytest.raises(ValueError, match="a task of rnnkit"):
            register(TaskSpec("tag", LineConfig, prepare, lambda t: nn.Linear(1, 1), load_line, LoadedLine))
    finally:
        from rnnkit.tasks import _Registry

        _Registry.added.pop("line", None)
