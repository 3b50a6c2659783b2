"""``rnnkit forecast``: train and eval end to end on a seasonal series (``cli/forecast.py``)."""

from __future__ import annotations

import json

from tests.helpers import seasonal_csv

from rnnkit.cli import main


def test_cli_beats_the_seasonal_naive_on_a_clean_seasonal_series(tmp_path, capsys):
    source = seasonal_csv(tmp_path / "air.csv", noise=1.0)
    args = ["forecast", "train", str(source), "--column", "Passengers", "--out", str(tmp_path / "run")]
    args += ["--log", "--target", "seasonal-diff", "--window", "12", "--max-steps", "150", "--quiet"]
    args += ["--hidden-size", "16", "--eval-interval", "50"]
    assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["forecast", "eval", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"rmse", "mae", "mape", "naive", "seasonal_naive"} <= set(result)
    assert result["rmse"] < result["seasonal_naive"]["rmse"]  # the trend the seasonal naive misses
    png = (tmp_path / "run" / "forecast-test.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    code = main(["forecast", "train", str(source), "--column", "Nope", "--out", str(tmp_path / "r2")])
    err = capsys.readouterr().err
    assert code == 3 and "no column named 'Nope'" in err and err.count("\n") == 1
    assert not (tmp_path / "r2").exists()
