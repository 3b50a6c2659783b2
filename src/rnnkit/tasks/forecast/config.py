"""The forecaster's configs: the network (``model``), the series and its windows (``data``), training."""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnkit.config import check_rnn_fields
from rnnkit.train.config import TrainConfig, flag, task_training

TASK = "forecast"
TARGETS = ("level", "diff", "seasonal-diff")


@dataclass(kw_only=True)
class ForecastModelConfig:
    cell: str = flag("lstm", "lstm, gru or rnn.")
    hidden_size: int = flag(64, "Units per layer.")
    num_layers: int = flag(1, "Stacked layers.")
    dropout: float = flag(0.0, "Dropout probability.")

    def __post_init__(self) -> None:
        check_rnn_fields(self, positive=("hidden_size", "num_layers"))


@dataclass(kw_only=True)
class ForecastDataConfig:
    path: str = ""
    column: str = ""
    """The column to forecast (a name or a 0-based number)."""
    inputs: list[str] = flag(  # noqa: RUF009 (a dataclasses.field with a default factory)
        help="More input columns the network reads (not forecast), comma-separated.", factory=list
    )
    date_column: str = flag(
        "auto", "The dates' column (auto: the first column whose values parse as dates; none: no dates)."
    )
    window: int = flag(24, "Past steps the network reads.")
    horizon: int = flag(1, "Steps ahead to forecast.")
    season: int = flag(
        0, "Steps per season, for the seasonal-naive baseline and seasonal-diff (0: guess from the dates)."
    )
    target: str = flag("level", "level, diff or seasonal-diff.")
    log: bool = flag(
        False, "Model the logarithm of the values (multiplicative growth; values must be positive)."
    )
    val_fraction: float = flag(0.15, "Share of the series (before the test span) for validation.")
    test_fraction: float = flag(0.15, "Share of the series at its end held out for the test.")

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
        )
    )
