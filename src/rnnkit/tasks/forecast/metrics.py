"""Scores in the original units (RMSE, MAE, MAPE) and the naive and seasonal-naive forecasts."""

from __future__ import annotations

import numpy as np

from rnnkit.tasks.forecast.config import ForecastDataConfig
from rnnkit.tasks.forecast.data import Prepared


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
