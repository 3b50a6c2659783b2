"""The forecaster network: an RNN over a window, its last state mapped to ``horizon`` values."""

from __future__ import annotations

from torch import Tensor, nn

from rnnkit.nn import LSTMState, Recurrent
from rnnkit.tasks.forecast.config import ForecastModelConfig


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
