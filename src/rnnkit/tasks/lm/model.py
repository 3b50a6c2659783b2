"""The char-RNN itself: :class:`CharLM` (nn.Modules only, no I/O)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.nn import Recurrent, Stepper
from rnnkit.tasks.lm.config import LMConfig, ModelConfig

#: Widest batch of streams for which :meth:`CharLM.step` takes the stepper by default.
FAST_STREAMS = 4


class CharLM(nn.Module):
    r"""Character language model: :math:`o_t = \mathrm{softmax}(V\, \mathrm{RNN}(E x_t, s_{t-1}) + c)`.

    Args:
        vocab_size: :math:`V`, the number of tokens.
        config: a :class:`ModelConfig`.

    Inputs: ``ids`` ``(N, T)`` int64, ``state`` (as :class:`rnnkit.nn.Recurrent` returns it) or ``None``.

    Outputs: ``(logits, state)``, logits ``(N, T, V)``.

    Regularisers, all off in eval mode (AWD-LSTM, Merity et al. 2018): ``dropout`` on the embedding,
    between layers and before the head; with ``locked_dropout`` the embedding's and the head's masks
    are drawn once per sequence and shared by every step (between layers the fused kernel draws its
    own); ``weight_drop`` zeroes that fraction of every recurrent matrix :math:`W_{hh}` (one mask per
    batch, scaled by :math:`1/(1-p)`), so the recurrent connections themselves are regularised while
    the fused kernel still runs.
    """

    def __init__(self, vocab_size: int, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.embedding_size)
        self.rnn = Recurrent(
            config.embedding_size,
            config.hidden_size,
            cell=config.cell,
            num_layers=config.num_layers,
            dropout=config.dropout,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, vocab_size)

    def forward(self, ids: Tensor, state=None):
        x = self._drop(self.embedding(ids))  # (N, T, E)
        out, state = self._recurrent(x, state)  # (N, T, H)
        return self.head(self._drop(out)), state  # (N, T, V)

    def _drop(self, x: Tensor) -> Tensor:
        """Dropout on ``(N, T, F)`` features: a new mask per step, or one per sequence when locked."""
        p = self.config.dropout
        if not self.config.locked_dropout or not self.training or p == 0.0:
            return self.dropout(x)
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1.0 - p) / (1.0 - p)
        return x * mask

    def _recurrent(self, x: Tensor, state):
        p = self.config.weight_drop
        if not self.training or p == 0.0:
            return self.rnn(x, state=state)
        weights = {
            name: F.dropout(weight, p) if name.startswith("weight_hh") else weight
            for name, weight in self.rnn.named_parameters()
        }
        return torch.func.functional_call(self.rnn, weights, (x,), {"state": state})

    def step(self, ids: Tensor, state=None, *, fast: bool | None = None):
        """One token per stream: ``ids`` ``(N,)`` -> logits ``(N, V)`` and the new state.

        ``fast`` goes through a :class:`rnnkit.nn.Stepper` built from the current weights and rebuilt
        whenever they change; ``fast=False`` runs the plain forward pass on a length-1 sequence. The
        default takes the stepper in eval mode without gradients for up to ``FAST_STREAMS`` streams: on
        CPU the fused kernel (oneDNN) wins for wider batches (see bench/sample_speed.py). Both give
        the same tokens.
        """
        if fast is None:
            fast = not self.training and not torch.is_grad_enabled() and ids.shape[0] <= FAST_STREAMS
        if fast:
            return self.stepper().step(ids, state)
        logits, state = self(ids[:, None], state)
        return logits[:, 0], state

    def stepper(self) -> Stepper:
        """The fast one-step path for the current weights (cached until a weight changes)."""
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in self.parameters())
        cached = self.__dict__.get("_stepper")
        if cached is None or cached[0] != key:
            cached = (key, Stepper(self.embedding, self.rnn, self.head))
            self.__dict__["_stepper"] = cached
        return cached[1]


def build_model(config: LMConfig, vocab_size: int) -> CharLM:
    return CharLM(vocab_size, config.model)
