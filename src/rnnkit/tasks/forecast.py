r"""Time-series forecasting with an RNN: read a window of the past, predict the next ``horizon`` values.

The series is split in time order into training, validation and test spans (no shuffling across
time); everything fitted (the scaling, the statistics of the target) is fitted on the training span
only. A window of ``window`` past steps (the target column and any extra input columns, scaled) runs
through an LSTM; its last state maps to ``horizon`` outputs at once (direct multi-step forecasting).

What the network predicts is chosen by ``target``, in the (optionally ``log``) value space :math:`z`:

- ``level``: :math:`z_{t+h}` itself;
- ``diff``: the change from the last observed value, :math:`z_{t+h} - z_t`;
- ``seasonal-diff``: the change from one season before, :math:`z_{t+h} - z_{t+h-S}` (needs
  :math:`S \ge` horizon), which suits series that repeat each season with a drift (airline passengers).

Every prediction is scored in the original units (RMSE, MAE, MAPE) next to the naive forecast (the
last observed value) and the seasonal-naive forecast (the value one season earlier) on the same test
targets.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.config import check_rnn_fields
from rnnkit.data.files import read_text_file
from rnnkit.errors import CheckpointError, DataError, UsageError
from rnnkit.nn import LSTMState, Recurrent
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import (
    load_weights,
    task_config,
)
from rnnkit.train.config import TrainConfig, task_training
from rnnkit.train.rundir import no_symlink
from rnnkit.train.task import Setup, Task, TaskSpec

log = logging.getLogger("rnnkit")
TASK = "forecast"
TARGETS = ("level", "diff", "seasonal-diff")
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m", "%d-%m-%y", "%d-%m-%Y", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d", "%Y")


@dataclass(kw_only=True)
class ForecastModelConfig:
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_rnn_fields(self, positive=("hidden_size", "num_layers"))


@dataclass(kw_only=True)
class ForecastDataConfig:
    path: str = ""
    column: str = ""
    """The column to forecast (a name or a 0-based number)."""
    inputs: list[str] = field(default_factory=list)
    """More columns the network reads (not forecast)."""
    date_column: str = "auto"
    """The column holding dates (auto: the first column whose values parse as dates; none: no dates)."""
    window: int = 24
    horizon: int = 1
    season: int = 0
    """Steps in one season for the seasonal-naive baseline and seasonal-diff (0: guess from the dates)."""
    target: str = "level"
    log: bool = False
    """Model log(values) (multiplicative growth); the values must be positive."""
    val_fraction: float = 0.15
    test_fraction: float = 0.15

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target: expected one of {list(TARGETS)}, got {self.target!r}")
        for name in ("window", "horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.season < 0:
            raise ValueError(f"season: expected 0 or more, got {self.season}")
        if not 0 < self.val_fraction < 0.5 or not 0 < self.test_fraction < 0.5:
            raise ValueError("val_fraction, test_fraction: expected fractions in (0, 0.5)")


@dataclass(kw_only=True)
class ForecastConfig:
    model: ForecastModelConfig = field(default_factory=ForecastModelConfig)
    data: ForecastDataConfig = field(default_factory=ForecastDataConfig)
    train: TrainConfig = field(
        default_factory=task_training(
            batch_size=32,
            warmup_steps=20,
            eval_interval=50,
            lr=3e-3,
            max_minutes=2.0,
            weight_decay=0.0,
            eval_tokens=0,
        )
    )


# -------------------------------------------------------------------------------------------------
# reading a series


@dataclass
class Series:
    values: np.ndarray  # (T, F) float64: the target column first, then the input columns
    names: list[str]
    dates: list[datetime] | None
    date_format: str | None


def _parse_dates(cells: list[str]) -> tuple[list[datetime], str] | None:
    for fmt in DATE_FORMATS:
        try:
            return [datetime.strptime(c.strip(), fmt) for c in cells], fmt
        except ValueError:
            continue
    return None


def read_series(path: Path, column: str, inputs: Sequence[str] = (), date_column: str = "auto") -> Series:
    """The numeric columns ``column`` and ``inputs`` of a CSV file with a header row, and its dates."""
    path = Path(path)
    text = read_text_file(path, "utf-8", "a CSV file")
    rows = [
        (n, r)
        for n, r in enumerate(csv.reader(io.StringIO(text, newline="")), 1)
        if any(c.strip() for c in r)
    ]
    if len(rows) < 3:
        raise DataError(f"{path}: expected a header row and at least two rows of values")
    header = [c.strip() for c in rows[0][1]]

    def index(spec: str, what: str) -> int:
        if spec.isdigit():
            if int(spec) >= len(header):
                raise DataError(f"{path}: {what} {spec} is past the last column ({len(header) - 1})")
            return int(spec)
        if spec not in header:
            raise DataError(f"{path}: no column named {spec!r} for {what} (columns: {', '.join(header)})")
        return header.index(spec)

    wanted = [index(column, "--column")] + [index(c, "--inputs") for c in inputs]
    values = np.empty((len(rows) - 1, len(wanted)))
    for i, (line, row) in enumerate(rows[1:]):
        for j, at in enumerate(wanted):
            cell = row[at].strip() if at < len(row) else ""
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}:{line}: expected a number in column {header[at]!r}, got {cell!r}"
                ) from None
            if not math.isfinite(values[i, j]):
                raise DataError(f"{path}:{line}: column {header[at]!r} holds {cell!r}")
    dates, fmt = None, None
    if date_column != "none":
        candidates = [index(date_column, "--date-column")] if date_column != "auto" else range(len(header))
        for at in candidates:
            if at in wanted:
                continue
            found = _parse_dates([row[at] if at < len(row) else "" for _, row in rows[1:]])
            if found:
                dates, fmt = found
                break
            if date_column != "auto":
                raise DataError(f"{path}: column {header[at]!r} holds no dates in a known format")
    return Series(values, [header[a] for a in wanted], dates, fmt)


def guess_season(series: Series) -> int:
    """12 for monthly dates, 4 for quarterly, 365 for calendar days (two years or more), else 0."""
    if not series.dates or len(series.dates) < 3:
        return 0
    gaps = np.diff([d.toordinal() for d in series.dates[: min(len(series.dates), 200)]])
    step = float(np.median(gaps))
    if 28 <= step <= 31:
        return 12
    if 89 <= step <= 92:
        return 4
    if step == 1 and gaps.max() == 1 and len(series.dates) >= 2 * 365:
        return 365  # calendar days; trading days (weekend gaps) have no fixed number of steps a year
    return 0


# -------------------------------------------------------------------------------------------------
# windows


@dataclass
class Prepared:
    """Scaled inputs and targets of every window, and what turns predictions back into values."""

    inputs: np.ndarray  # (T, F) scaled
    z: np.ndarray  # (T,) the target in model space (log or not), unscaled
    raw: np.ndarray  # (T,) the target in original units
    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)
    target_mean: float
    target_std: float
    spans: dict[str, tuple[int, int]]  # first and last+1 index of the target steps of each split
    season: int


def spans_of(length: int, val_fraction: float, test_fraction: float) -> dict[str, tuple[int, int]]:
    test = max(1, round(length * test_fraction))
    val = max(1, round(length * val_fraction))
    return {
        "train": (0, length - val - test),
        "val": (length - val - test, length - test),
        "test": (length - test, length),
    }


def target_offsets(d: ForecastDataConfig, z: np.ndarray, t: int, season: int) -> np.ndarray:
    """What the target is measured from, for the ``horizon`` steps after step ``t`` (the last input)."""
    steps = np.arange(1, d.horizon + 1)
    if d.target == "level":
        return np.zeros(d.horizon)
    if d.target == "diff":
        return np.full(d.horizon, z[t])
    return z[t + steps - season]


def first_end(d: ForecastDataConfig, season: int) -> int:
    """The earliest last-input step: a full window behind it, and a season behind its targets."""
    return max(d.window - 1, season - 1 if d.target == "seasonal-diff" else 0)


def window_ends(
    spans: dict[str, tuple[int, int]], d: ForecastDataConfig, season: int, split: str
) -> list[int]:
    """The last input step ``t`` of every window whose ``horizon`` targets all lie inside ``split``."""
    lo, hi = spans[split]
    return list(range(max(lo - 1, first_end(d, season)), hi - d.horizon))


def prepare(series: Series, d: ForecastDataConfig, stats: dict | None = None) -> Prepared:
    raw = series.values[:, 0]
    season = stats["season"] if stats else (d.season or guess_season(series))
    if d.target == "seasonal-diff" and season < d.horizon:
        raise UsageError("--target seasonal-diff needs --season (at least --horizon steps); none was found")
    if d.log and (raw <= 0).any():
        raise DataError(f"{d.path}: --log needs positive values in {series.names[0]!r}")
    values = series.values.copy()
    if d.log:
        values[:, 0] = np.log(values[:, 0])
    z = values[:, 0]
    spans = spans_of(len(z), d.val_fraction, d.test_fraction)
    train_ends = window_ends(spans, d, season, "train")
    if len(train_ends) < 2:
        raise DataError(
            f"{d.path}: {len(z)} rows leave too few training windows for --window {d.window}"
            + (f" and a season of {season}" if d.target == "seasonal-diff" else "")
        )
    if stats is None:
        train = values[: spans["train"][1]]
        mean, std = train.mean(0), train.std(0)
        std[std == 0] = 1.0
        flat = np.concatenate(
            [z[t + 1 : t + 1 + d.horizon] - target_offsets(d, z, t, season) for t in train_ends]
        )
        target_mean, target_std = float(flat.mean()), float(flat.std() or 1.0)
    else:
        mean, std = np.array(stats["mean"]), np.array(stats["std"])
        target_mean, target_std = stats["target_mean"], stats["target_std"]
    return Prepared((values - mean) / std, z, raw, mean, std, target_mean, target_std, spans, season)


def windows(p: Prepared, d: ForecastDataConfig, split: str) -> list[int]:
    return window_ends(p.spans, d, p.season, split)


def batch_of(p: Prepared, d: ForecastDataConfig, ends: list[int]) -> tuple[Tensor, Tensor]:
    x = np.stack([p.inputs[t - d.window + 1 : t + 1] for t in ends])
    y = np.stack(
        [
            (p.z[t + 1 : t + 1 + d.horizon] - target_offsets(d, p.z, t, p.season) - p.target_mean)
            / p.target_std
            for t in ends
        ]
    )
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


def to_values(p: Prepared, d: ForecastDataConfig, ends: list[int], scaled: np.ndarray) -> np.ndarray:
    """Predictions ``(W, horizon)`` in the model's scaled target space -> original units."""
    offsets = np.stack([target_offsets(d, p.z, t, p.season) for t in ends])
    z = scaled * p.target_std + p.target_mean + offsets
    return np.exp(z) if d.log else z


# -------------------------------------------------------------------------------------------------
# the model and the task


class Forecaster(nn.Module):
    """A window ``(N, W, F)`` -> (RNN) -> last state -> ``horizon`` values ``(N, H)``."""

    def __init__(self, features: int, horizon: int, config: ForecastModelConfig) -> None:
        super().__init__()
        self.rnn = Recurrent(
            features,
            config.hidden_size,
            cell=config.cell,
            num_layers=config.num_layers,
            dropout=config.dropout,
        )
        self.head = nn.Linear(config.hidden_size, horizon)

    def forward(self, x: Tensor) -> Tensor:
        _, state = self.rnn(x)
        h = state.h if isinstance(state, LSTMState) else state
        return self.head(h[-1])


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
        if self.index * size >= len(self._order):
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


def actual_values(p: Prepared, d: ForecastDataConfig, ends: list[int]) -> np.ndarray:
    return np.stack([p.raw[t + 1 : t + 1 + d.horizon] for t in ends])


# -------------------------------------------------------------------------------------------------
# scores


def errors(pred: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and MAPE (percent; rows with an actual value of 0 are left out of MAPE)."""
    diff = pred - actual
    nonzero = actual != 0
    mape = float(np.mean(np.abs(diff[nonzero] / actual[nonzero])) * 100) if nonzero.any() else float("nan")
    return {"rmse": float(np.sqrt(np.mean(diff**2))), "mae": float(np.mean(np.abs(diff))), "mape": mape}


def baselines(p: Prepared, d: ForecastDataConfig, ends: list[int]) -> dict[str, np.ndarray]:
    steps = np.arange(1, d.horizon + 1)
    out = {"naive": np.stack([np.full(d.horizon, p.raw[t]) for t in ends])}
    if p.season >= 1:
        # the value one season before each target; for a target further out than a season, the last
        # observed season repeats
        def back(t: int) -> np.ndarray:
            lag = p.season * np.ceil(steps / p.season).astype(int)
            return p.raw[t + steps - lag]

        out["seasonal_naive"] = np.stack([back(t) for t in ends])
    return out


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
