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

from rnnkit.data.items import a_list
from rnnkit.errors import CheckpointError, DataError
from rnnkit.tasks.forecast.config import TASK, ForecastConfig
from rnnkit.tasks.forecast.data import (
    Prepared,
    Series,
    actual_values,
    batch_of,
    prepare,
    prepare_history,
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
    """A trained forecaster, as ``rnnkit.load(run_dir)`` returns it.

    Methods:

    - ``forecast(series=None) -> dict``: the next ``horizon`` values after a series (default: the end of
      the run's own CSV file), with the naive baselines beside them (what the server's ``/v1/forecast``
      gives): ``{"horizon", "history", "forecast", "baselines": {"naive", "seasonal_naive"}}``.
    - ``evaluate(split="test", path=None) -> dict``: errors of the model and the baselines on a span of
      the run's series (what ``rnnkit forecast eval`` prints).

    Attributes: ``model``, ``config``, ``stats`` (the scaling and the season), ``checkpoint``.
    """

    model: Forecaster
    config: ForecastConfig
    stats: dict
    checkpoint: str

    def forecast(self, series: list[float] | None = None) -> dict:
        """The next ``horizon`` values after ``series`` (values of the one column the run forecasts,
        oldest first; at least :func:`history_needed` of them), or, with ``None``, after the end of the
        run's own series (``config.data.path``, its input columns too). Returns ``horizon``, ``history``
        (the last values of the target, at most 200), ``forecast`` and ``baselines``: ``naive`` (the
        last value repeated) and, when the run has a season, ``seasonal_naive`` (the value a season
        before each step)."""
        d = self.config.data
        if series is None:
            where = d.path
            values = read_series(Path(d.path), d.column, d.inputs, d.date_column).values
        else:
            where = "the series"
            a_list(series, "forecast", "numbers")
            columns = len(self.stats["mean"])
            if columns != 1:
                raise DataError(
                    f"this forecaster reads {columns} columns ({d.column} and {', '.join(d.inputs)}); "
                    "it forecasts only the end of its own series (give no series)"
                )
            try:
                values = np.asarray(series, dtype=np.float64).reshape(len(series), 1)
            except (TypeError, ValueError):
                raise DataError(f"{where}: expected a list of numbers") from None
        p = prepare_history(values, d, self.stats, where)
        t = len(values) - 1  # the last input step
        x = torch.tensor(p.inputs[t - d.window + 1 : t + 1][None], dtype=torch.float32)  # (1, window, F)
        with torch.no_grad():
            pred = to_values(p, d, [t], self.model(x).float().numpy())[0]
        if not np.isfinite(pred).all():
            raise DataError(f"{where}: the forecast is not a finite number (values too large for the model?)")
        return {
            "horizon": d.horizon,
            "history": p.raw[-200:].tolist(),
            "forecast": pred.tolist(),
            "baselines": {name: values[0].tolist() for name, values in baselines(p, d, [t]).items()},
        }

    def evaluate(self, split: str = "test", path: Path | None = None, plot_to: Path | None = None) -> dict:
        """Errors of the model and the baselines on ``split`` of the run's series (or of ``path``); with
        ``plot_to``, also the PNG of :func:`plot` there, its path under ``"plot"``."""
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
        base = baselines(p, d, ends)
        for name, forecast in base.items():
            result[name] = errors(forecast, actual)
        if plot_to is not None:
            title = f"{Path(path or d.path).name}: {d.column}, {split} span, horizon {d.horizon}"
            plot(result, Path(plot_to), title, series=series, ends=ends, pred=pred, actual=actual, base=base)
            result["plot"] = str(plot_to)
        return result


def plot(
    result: dict, out: Path, title: str, *, series: Series, ends: list[int], pred: np.ndarray,
    actual: np.ndarray, base: dict[str, np.ndarray],
) -> None:  # fmt: skip
    """Actual values, the model's first-step forecasts ``pred`` and the ``base``-line forecasts over the
    windows ending at ``ends`` of ``series``; the legend gives their RMSEs from ``result`` (what
    :meth:`LoadedForecaster.evaluate` returns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs: list = [series.dates[t + 1] for t in ends] if series.dates else [t + 1 for t in ends]
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
