"""``rnnkit forecast train | eval``: time-series forecasting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli.options import (
    CONFIG_FLAGS,
    CheckpointOpt,
    ConfigValues,
    ForceOpt,
    Opt,
    OutOpt,
    QuietOpt,
    ResumeOpt,
    SetOpt,
    _train_task,
    config_flags,
)
from rnnkit.console import setup_logging
from rnnkit.errors import UsageError

forecast_app = typer.Typer(
    help="Time-series forecasting with an RNN, scored against naive baselines.", no_args_is_help=True
)


@forecast_app.command(
    "train",
    epilog="Examples:\n\n"
    "  rnnkit forecast train airline-passengers.csv --column Passengers --log --target seasonal-diff\n\n"
    "  rnnkit forecast train daily-min-temperatures.csv --column Temp --window 30 --out runs/temp\n\n"
    "  rnnkit forecast train sp500.csv --column Close --inputs Volume --target diff --out runs/sp500\n\n",
)
@config_flags("forecast")
def forecast_train(
    data: Annotated[
        Path | None, typer.Argument(help="A CSV file with a header row.", show_default=False)
    ] = None,
    column: Annotated[str | None, Opt(help="The column to forecast (name or 0-based number).")] = None,
    out: OutOpt = None,
    values: ConfigValues = CONFIG_FLAGS,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a forecaster on one column of a CSV file (train, validation and test spans in time order)."""
    from rnnkit.tasks import forecast

    _train_task(
        "forecast", values, set_, data=data,
        base={"data.path": data and str(data), "data.column": column},
        default_out=data and Path("runs") / f"forecast-{data.stem}", saved=forecast.saved_forecast_config,
        missing="give the CSV file and --column, or --resume RUN",
        out=out, resume=resume, force=force, quiet=quiet,
        report=lambda r: f"step {r['step']}, validation RMSE {r.get('val_rmse', float('nan')):.4g}",
    )  # fmt: skip


@forecast_app.command("eval")
def forecast_eval(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit forecast train.")],
    json_: Annotated[bool, Opt("--json", help="One JSON object instead of a table.")] = False,
    split: Annotated[str, Opt(help="test or val.")] = "test",
    plot: Annotated[
        Path | None, Opt(help="Where to save the PNG plot (default: RUN/forecast-SPLIT.png).")
    ] = None,
    checkpoint: CheckpointOpt = "best",
) -> None:
    """RMSE, MAE and MAPE on the test span, next to the naive and seasonal-naive forecasts; saves a plot."""
    from rnnkit.tasks import load_run

    setup_logging()
    if split not in ("test", "val"):
        raise UsageError(f"--split: expected test or val, got {split!r}")
    loaded = load_run(run, checkpoint, task="forecast")
    result = loaded.evaluate(split, plot_to=plot or run / f"forecast-{split}.png")
    d = loaded.config.data
    if json_:
        print(json.dumps(result))
        return
    print(f"{d.path} [{d.column}], {split} span: {result['windows']} windows, horizon {result['horizon']}")
    print(f"{'':16} {'RMSE':>10} {'MAE':>10} {'MAPE %':>8}")
    rows = [("rnnkit", result)] + [(k, v) for k, v in result.items() if k in ("naive", "seasonal_naive")]
    for name, row in rows:
        print(f"{name:16} {row['rmse']:>10.4g} {row['mae']:>10.4g} {row['mape']:>8.2f}")
    print(f"plot: {result['plot']}")
