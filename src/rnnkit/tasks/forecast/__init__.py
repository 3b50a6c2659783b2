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

from rnnkit.tasks.forecast.config import TASK, ForecastConfig, ForecastDataConfig, ForecastModelConfig
from rnnkit.tasks.forecast.data import Prepared, Series, guess_season, prepare, read_series, windows
from rnnkit.tasks.forecast.metrics import baselines, errors
from rnnkit.tasks.forecast.model import Forecaster
from rnnkit.tasks.forecast.task import (
    SPEC,
    ForecastTask,
    LoadedForecaster,
    load_forecaster,
    plot,
    prepare_task,
    saved_forecast_config,
)

__all__ = [
    "SPEC",
    "TASK",
    "ForecastConfig",
    "ForecastDataConfig",
    "ForecastModelConfig",
    "ForecastTask",
    "Forecaster",
    "LoadedForecaster",
    "Prepared",
    "Series",
    "baselines",
    "errors",
    "guess_season",
    "load_forecaster",
    "plot",
    "prepare",
    "prepare_task",
    "read_series",
    "saved_forecast_config",
    "windows",
]
