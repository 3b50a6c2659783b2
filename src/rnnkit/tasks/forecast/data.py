"""Reading a series from CSV, the chronological spans, scaling, windows without leakage and batches."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.files import read_text_file
from rnnkit.errors import DataError, UsageError
from rnnkit.tasks.forecast.config import ForecastDataConfig

DATE_FORMATS = ("%Y-%m-%d", "%Y-%m", "%d-%m-%y", "%d-%m-%Y", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d", "%Y")


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


def history_needed(d: ForecastDataConfig, season: int) -> int:
    """The fewest values a forecast reads: a full window (a season more for seasonal-diff) and, with a
    season, one season behind the steps ahead (for the seasonal-naive forecast beside it)."""
    return max(first_end(d, season) + 1, season)


def prepare_history(values: np.ndarray, d: ForecastDataConfig, stats: dict, where: str) -> Prepared:
    """The last values of a series ``(T, F)`` (the target first, then the run's input columns), scaled
    with a trained run's statistics as :func:`prepare` scales its training series, to forecast what
    comes after them (no spans: nothing is held out). ``where`` names the series in errors."""
    season = int(stats["season"])
    need = history_needed(d, season)
    if values.ndim != 2 or len(values) < need:
        got = len(values) if values.ndim >= 1 else 0
        raise DataError(f"{where}: {got} values; this forecaster needs at least {need} to forecast from")
    if not np.isfinite(values).all():
        raise DataError(f"{where}: holds a value that is not a finite number")
    if d.log and (values[:, 0] <= 0).any():
        raise DataError(f"{where}: this forecaster models the logarithm (--log) and needs positive values")
    raw = values[:, 0].copy()
    values = values.copy()
    if d.log:
        values[:, 0] = np.log(values[:, 0])
    mean, std = np.array(stats["mean"]), np.array(stats["std"])
    scaled = (values - mean) / std
    return Prepared(
        scaled, values[:, 0], raw, mean, std, stats["target_mean"], stats["target_std"], {}, season
    )


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


def actual_values(p: Prepared, d: ForecastDataConfig, ends: list[int]) -> np.ndarray:
    return np.stack([p.raw[t + 1 : t + 1 + d.horizon] for t in ends])
