"""The forecasting task for the trainer, the loaded forecaster (evaluate, plot) and the registry's spec."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rnnkit.errors import CheckpointError, DataError
from rnnkit.tasks.forecast.config import TASK, ForecastConfig
from rnnkit.tasks.forecast.data import (
    Prepared,
    Series,
    actual_values,
    batch_of,
    prepare,
    read_series,
    to_values,
    windows,
)
from rnnkit.tasks.forecast.metrics import baselines, errors
from rnnkit.tasks.forecast.model import Forecaster
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import (
    load_weights,
    task_config,
)
from rnnkit.train.rundir import no_symlink
from rnnkit.train.task import Setup, Task, TaskSpec

log = logging.getLogger("rnnkit")


class ForecastTask(Task):
    name = TASK
    unit = "windows"
    selection = ("val_loss", "min")
    explode_factor = (
        None  # a squared error on heavy-tailed returns jumps far above the first batch's; NaN/inf still stop
    )

    def __init__(self, config: ForecastConfig, prepared: Prepared, series: Series) -> None:
        self.config, self.p, self.series = config, prepared, series
        d = config.data
        self.train_ends = windows(prepared, d, "train")
        self.val_ends = windows(prepared, d, "val")
        if not self.val_ends:
            raise DataError(f"{d.path}: the validation span holds no complete window; lower --horizon")
        self.epoch, self.index = 0, 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> list[int]:
        order = list(self.train_ends)
        random.Random(self.config.train.seed + self.epoch).shuffle(order)
        return order

    def next_batch(self):
        size = self.config.train.batch_size * self.world_size  # the global batch
        if self.index * size > len(self._order) - self.world_size:  # under DDP each rank needs a row
            self.epoch += 1
            self.index = 0
            self._order = self._epoch_order()
        ends = self._order[self.index * size : (self.index + 1) * size]
        self.index += 1
        mine = self.shard(ends)
        return (*batch_of(self.p, self.config.data, mine), self.share(len(mine), len(ends))), False

    def data_state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_data_state(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._order = self._epoch_order()

    def training_loss(self, model: nn.Module, batch, carry):
        x, y, share = batch
        return F.mse_loss(model(x).float(), y) * share, None, int(y.shape[0])

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        x, y = batch_of(self.p, self.config.data, self.val_ends)
        device = next(model.parameters()).device
        with torch.no_grad():
            pred = model(x.to(device)).float().cpu()
        values = to_values(self.p, self.config.data, self.val_ends, pred.numpy())
        actual = actual_values(self.p, self.config.data, self.val_ends)
        return {
            "val_loss": float(F.mse_loss(pred, y)),
            "val_rmse": float(np.sqrt(((values - actual) ** 2).mean())),
        }

    def on_evaluate(self, model: nn.Module, step: int) -> None:
        return None

    def checkpoint_extras(self) -> dict:
        p = self.p
        return {
            "stats": {
                "mean": p.mean.tolist(), "std": p.std.tolist(), "target_mean": p.target_mean,
                "target_std": p.target_std, "season": p.season,
            },
        }  # fmt: skip


@dataclass
class LoadedForecaster:
    model: Forecaster
    config: ForecastConfig
    stats: dict
    checkpoint: str

    def evaluate(self, split: str = "test", path: Path | None = None) -> dict:
        """Errors of the model and the baselines on ``split`` of the run's series (or of ``path``)."""
        d = self.config.data
        series = read_series(Path(path or d.path), d.column, d.inputs, d.date_column)
        p = prepare(series, d, self.stats)
        ends = windows(p, d, split)
        if not ends:
            raise DataError(f"{d.path}: the {split} span holds no complete window")
        x, _ = batch_of(p, d, ends)
        with torch.no_grad():
            pred = to_values(p, d, ends, self.model(x).numpy())
        actual = actual_values(p, d, ends)
        result = {"split": split, "windows": len(ends), "horizon": d.horizon, "season": p.season}
        result |= errors(pred, actual)
        for name, forecast in baselines(p, d, ends).items():
            result[name] = errors(forecast, actual)
        result["_plot"] = (series, ends, pred, actual, baselines(p, d, ends))
        return result


def plot(result: dict, out: Path, title: str) -> None:
    """Actual values, the model's first-step forecasts and the baselines over the evaluated span."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series, ends, pred, actual, base = result["_plot"]
    xs = [series.dates[t + 1] for t in ends] if series.dates else [t + 1 for t in ends]
    fig, ax = plt.subplots(figsize=(10, 4), dpi=110)
    ax.plot(xs, actual[:, 0], color="black", lw=1.2, label="actual")
    ax.plot(xs, pred[:, 0], color="tab:red", lw=1.2, label=f"rnnkit (RMSE {result['rmse']:.3g})")
    for (name, values), color in zip(base.items(), ("tab:gray", "tab:blue"), strict=False):
        ax.plot(
            xs,
            values[:, 0],
            color=color,
            lw=0.8,
            ls="--",
            label=f"{name.replace('_', '-')} (RMSE {result[name]['rmse']:.3g})",
        )
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(no_symlink(out))
    plt.close(fig)


# -------------------------------------------------------------------------------------------------
# training and loading


def prepare_task(config: ForecastConfig, setup: Setup) -> ForecastTask:
    """Read the series, scale it (with a resumed run's saved statistics) and cut it into windows."""
    d = config.data
    series = read_series(Path(d.path), d.column, d.inputs, d.date_column)
    stats = saved_stats(setup.resumed) if setup.resumed is not None else None
    prepared = prepare(series, d, stats)
    task = ForecastTask(config, prepared, series)
    log.info(
        "series: %d steps of %s (%s), season %d; %d training and %d validation windows",
        len(prepared.z), series.names[0], series.date_format or "no dates", prepared.season,
        len(task.train_ends), len(task.val_ends),
    )  # fmt: skip
    return task


def saved_stats(loaded) -> dict:
    """The scaling statistics a checkpoint's config.json records."""
    stats = loaded.config.get("stats")
    if not isinstance(stats, dict) or not isinstance(stats.get("mean"), list):
        raise CheckpointError(f"{loaded.folder}: config.json lacks the scaling statistics")
    return stats


def saved_forecast_config(run_dir: Path) -> ForecastConfig:
    return task_config(run_dir, "last", TASK, ForecastConfig, "a forecaster")[1]


def load_forecaster(run_dir: Path, which: str = "best") -> LoadedForecaster:
    loaded, config = task_config(run_dir, which, TASK, ForecastConfig, "a forecaster")
    stats = saved_stats(loaded)
    model = build_checked(
        lambda: Forecaster(len(stats["mean"]), config.data.horizon, config.model), checkpoint=loaded
    )
    load_weights(model, loaded)
    model.eval()
    return LoadedForecaster(model, config, stats, loaded.name)


SPEC = TaskSpec(
    name=TASK,
    config=ForecastConfig,
    prepare=prepare_task,
    build_model=lambda task: Forecaster(task.p.inputs.shape[1], task.config.data.horizon, task.config.model),
    load=lambda run_dir, which="best", device="cpu": load_forecaster(run_dir, which),
    loaded=LoadedForecaster,
)
"""The forecaster in the registry (``rnnkit.tasks.TASKS["forecast"]``)."""
