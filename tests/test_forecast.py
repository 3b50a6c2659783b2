"""Forecasting: reading series, chronological spans, windows without leakage, baselines and errors
(the CLI: tests/test_cli_forecast.py)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.helpers import seasonal_csv

from rnnkit.errors import DataError
from rnnkit.tasks.forecast import (
    ForecastDataConfig,
    baselines,
    errors,
    guess_season,
    prepare,
    read_series,
    windows,
)


def test_reads_columns_dates_and_guesses_the_season(tmp_path, shared_data):
    series = read_series(seasonal_csv(tmp_path / "a.csv"), "Passengers")
    assert series.values.shape == (144, 1) and series.date_format == "%Y-%m" and guess_season(series) == 12
    sp = read_series(shared_data / "timeseries/sp500.csv", "Close", ["Volume"])
    assert sp.values.shape == (4697, 2) and sp.date_format == "%d-%m-%y"
    assert sp.dates[0].year == 2000 and sp.dates[-1].isoformat()[:10] == "2018-08-31"
    temps = read_series(shared_data / "timeseries/daily-min-temperatures.csv", "1")
    assert temps.values.shape == (3650, 1) and guess_season(temps) == 365


@pytest.mark.parametrize(
    ("content", "column", "message"),
    [
        (
            "Month,Value\n1949-01,1\n1949-02,x\n1949-03,2\n",
            "Value",
            r"a\.csv:3: expected a number in column 'Value', got 'x'",
        ),
        ("Month,Value\n1949-01,1\n1949-02,2\n", "Price", "no column named 'Price'"),
        ("Month,Value\n", "Value", "at least two rows"),
        ("Month,Value\n1949-01,1\n1949-02,nan\n1949-03,2\n", "Value", "a.csv:3: column 'Value' holds 'nan'"),
    ],
)
def test_unparsable_series_name_file_line_and_expectation(tmp_path, content, column, message):
    (tmp_path / "a.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        read_series(tmp_path / "a.csv", column)


def test_spans_are_chronological_and_targets_never_cross_them(tmp_path):
    series = read_series(seasonal_csv(tmp_path / "a.csv"), "Passengers")
    d = ForecastDataConfig(
        path="a.csv", column="Passengers", window=12, horizon=3, target="seasonal-diff", log=True
    )
    p = prepare(series, d)
    assert p.spans == {"train": (0, 100), "val": (100, 122), "test": (122, 144)}
    for split, (lo, hi) in p.spans.items():
        ends = windows(p, d, split)
        assert ends and all(lo <= t + 1 and t + d.horizon < hi for t in ends)  # every target inside its span
        assert all(t - d.window + 1 >= 0 and t + 1 - p.season >= 0 for t in ends)
    # scaling is fitted on the training span only: the test span does not move it
    changed = series.values.copy()
    changed[122:] *= 10
    series.values = changed
    q = prepare(series, d)
    assert np.allclose(q.mean, p.mean) and np.allclose(q.std, p.std) and q.target_mean == p.target_mean


def test_baselines_and_errors(tmp_path):
    series = read_series(seasonal_csv(tmp_path / "a.csv"), "Passengers")
    d = ForecastDataConfig(path="a.csv", column="Passengers", window=12, horizon=2)
    p = prepare(series, d)
    ends = windows(p, d, "test")
    found = baselines(p, d, ends)
    t = ends[0]
    assert found["naive"][0].tolist() == [p.raw[t], p.raw[t]]
    assert found["seasonal_naive"][0].tolist() == [p.raw[t + 1 - 12], p.raw[t + 2 - 12]]
    result = errors(np.array([[2.0, 4.0]]), np.array([[1.0, 5.0]]))
    assert result == {"rmse": 1.0, "mae": 1.0, "mape": pytest.approx((100 + 20) / 2)}
