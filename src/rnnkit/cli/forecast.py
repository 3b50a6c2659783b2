"""``rnnkit forecast train | eval``: time-series forecasting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli.options import (
    CellOpt,
    CheckpointOpt,
    EvalIntervalOpt,
    ForceOpt,
    LrOpt,
    MaxStepsOpt,
    NumLayersOpt,
    Opt,
    OutOpt,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    _budget_flags,
    _setup_logging,
    _train_task,
    minutes_opt,
)
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
def forecast_train(
    data: Annotated[
        Path | None, typer.Argument(help="A CSV file with a header row.", show_default=False)
    ] = None,
    column: Annotated[str | None, Opt(help="The column to forecast (name or 0-based number).")] = None,
    out: OutOpt = None,
    inputs: Annotated[str | None, Opt(help="More input columns, comma-separated.")] = None,
    date_column: Annotated[str | None, Opt(help="The dates' column (auto or none).")] = None,
    window: Annotated[int | None, Opt(help="Past steps the network reads.")] = None,
    horizon: Annotated[int | None, Opt(help="Steps ahead to forecast.")] = None,
    season: Annotated[int | None, Opt(help="Steps per season (0: guess from the dates).")] = None,
    target: Annotated[str | None, Opt(help="level, diff or seasonal-diff.")] = None,
    log_: Annotated[bool | None, Opt("--log/--no-log", help="Model the logarithm of the values.")] = None,
    val_fraction: Annotated[
        float | None, Opt(help="Share of the series (before the test span) for validation.")
    ] = None,
    test_fraction: Annotated[
        float | None, Opt(help="Share of the series at its end held out for the test.")
    ] = None,
    cell: CellOpt = None,
    hidden_size: Annotated[int | None, Opt(help="Units per layer.")] = None,
    num_layers: NumLayersOpt = None,
    batch_size: Annotated[int | None, Opt(help="Windows per batch.")] = None,
    lr: LrOpt = None,
    max_steps: MaxStepsOpt = None,
    max_minutes: minutes_opt(2) = None,
    eval_interval: EvalIntervalOpt = None,
    seed: SeedOpt = None,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: Annotated[
        list[str] | None, Opt("--set", help="Any config field by dotted key (repeatable).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a forecaster on one column of a CSV file (train, validation and test spans in time order)."""
    from rnnkit.tasks import forecast

    _setup_logging(quiet)
    flags = {
        "data.inputs": [c.strip() for c in inputs.split(",") if c.strip()] if inputs is not None else None,
        "data.date_column": date_column,
        "data.window": window,
        "data.horizon": horizon,
        "data.season": season,
        "data.target": target,
        "data.log": log_,
        "data.val_fraction": val_fraction,
        "data.test_fraction": test_fraction,
        "model.cell": cell,
        "model.hidden_size": hidden_size,
        "model.num_layers": num_layers,
        **_budget_flags(batch_size, lr, max_steps, max_minutes, eval_interval, seed),
    }
    _train_task(
        flags,
        set_,
        data=data,
        out=out,
        resume=resume,
        force=force,
        quiet=quiet,
        saved=forecast.saved_forecast_config,
        fresh=forecast.ForecastConfig,
        base={"data.path": data and str(data), "data.column": column},
        missing="give the CSV file and --column, or --resume RUN",
        name="forecast",
        report=lambda r: f"step {r['step']}, validation RMSE {r.get('val_rmse', float('nan')):.4g}",
    )


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
    from rnnkit.tasks.forecast import plot as save_plot

    _setup_logging()
    if split not in ("test", "val"):
        raise UsageError(f"--split: expected test or val, got {split!r}")
    loaded = load_run(run, checkpoint, task="forecast")
    result = loaded.evaluate(split)
    target = plot or run / f"forecast-{split}.png"
    d = loaded.config.data
    save_plot(result, target, f"{Path(d.path).name}: {d.column}, {split} span, horizon {d.horizon}")
    result.pop("_plot")
    result["plot"] = str(target)
    if json_:
        print(json.dumps(result))
        return
    print(f"{d.path} [{d.column}], {split} span: {result['windows']} windows, horizon {result['horizon']}")
    print(f"{'':16} {'RMSE':>10} {'MAE':>10} {'MAPE %':>8}")
    rows = [("rnnkit", result)] + [(k, v) for k, v in result.items() if k in ("naive", "seasonal_naive")]
    for name, row in rows:
        print(f"{name:16} {row['rmse']:>10.4g} {row['mae']:>10.4g} {row['mape']:>8.2f}")
    print(f"plot: {target}")
