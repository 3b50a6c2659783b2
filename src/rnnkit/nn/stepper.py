r"""``Stepper``: fast one-token-at-a-time inference for embedding -> :class:`Recurrent` -> linear models.

Generation advances every stream by one token per call, so its cost is per-call overhead plus one
matrix-vector product per layer. The plain path (``model(ids[:, None], state)``) pays for the
embedding lookup, the fused-kernel set-up of a length-1 sequence and the head as separate modules.
The stepper folds what can be folded once, when it is built:

- layer 0's input projection is precomputed for every token, :math:`T = E W_{ih}^\top + b_{ih}
  (+ b_{hh})`, so the embedding and the input matmul become one row lookup (``T[ids]``);
- for the LSTM and the vanilla RNN, the upper layers' two matrices are joined,
  :math:`[W_{ih}\; W_{hh}]`, so each layer is one ``addmm`` on ``[x; h]``.

From the pre-activations on, each layer is the cell's own ``update`` (:mod:`rnnkit.nn.cells`): the gate
equations are not written again here.

It computes the same function as the model, to float rounding, and the tests check that sampling
through it yields exactly the tokens of the plain path for a fixed seed. Unidirectional models only
(generation reads left to right). Built under ``torch.no_grad``; rebuild it when the weights change
(:meth:`rnnkit.tasks.lm.CharLM.step` does so automatically).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.nn.cells import GRUCell, LSTMCell, LSTMState, RNNCell, State
from rnnkit.nn.recurrent import Recurrent


class Stepper:
    """Precomputed weights of ``embedding -> rnn -> head`` for :meth:`step`.

    Args:
        embedding: token embedding ``(V, E)``.
        rnn: a unidirectional :class:`Recurrent` (``lstm``, ``gru`` or ``rnn``) with input size ``E``.
        head: linear map from the hidden size to the ``V`` logits.
    """

    @torch.no_grad()
    def __init__(self, embedding: nn.Embedding, rnn: Recurrent, head: nn.Linear) -> None:
        if rnn.num_directions != 1:
            raise ValueError("rnn: the stepper needs a unidirectional Recurrent")
        self.cell = rnn.cell
        self.nonlinearity = rnn.nonlinearity
        self.layers = rnn.num_layers
        self.hidden = rnn.hidden_size
        self.gru = rnn.cell == "gru"
        self.table: Tensor  # (V, G*H): layer 0's input projection of every token
        self.hh0: Tensor  # (H, G*H): layer 0's recurrent matrix, transposed
        self.b_hh0: Tensor | None = None  # GRU only: its hidden bias sits inside the reset gate
        self.upper: list[tuple[Tensor, ...]] = []
        for layer in range(rnn.num_layers):
            w_ih, w_hh, b_ih, b_hh = rnn._layer_weights(layer, 0)
            zeros = w_ih.new_zeros(w_ih.shape[0])
            b_ih = zeros if b_ih is None else b_ih
            b_hh = zeros if b_hh is None else b_hh
            if layer == 0:
                self.table = torch.addmm(b_ih if self.gru else b_ih + b_hh, embedding.weight, w_ih.t())
                self.hh0 = w_hh.t().contiguous()
                self.b_hh0 = b_hh.clone() if self.gru else None
            elif self.gru:
                self.upper.append((w_ih.t().contiguous(), b_ih.clone(), w_hh.t().contiguous(), b_hh.clone()))
            else:
                self.upper.append((torch.cat([w_ih, w_hh], 1).t().contiguous(), b_ih + b_hh))
        self.head_w = head.weight.t().contiguous()
        self.head_b = head.bias.clone() if head.bias is not None else None

    # ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One token per stream: ``ids`` ``(N,)`` -> logits ``(N, V)`` and the new state.

        ``state`` is what :class:`Recurrent` takes and returns: ``(L, N, H)``, or an :class:`LSTMState`
        of two such tensors for the LSTM; ``None`` starts from zeros.
        """
        n, h_size = ids.shape[0], self.hidden
        if state is None:
            zeros = self.table.new_zeros(self.layers, n, h_size)
            state = LSTMState(zeros, zeros) if self.cell == "lstm" else zeros
        hs, cs = (state.h, state.c) if isinstance(state, LSTMState) else (state, None)
        new_h, new_c = [], []
        x = None
        for layer in range(self.layers):
            h = hs[layer]
            if self.cell == "lstm":
                assert cs is not None
                x, c = LSTMCell.update(self._joint_gates(layer, ids, x, h), cs[layer])
                new_c.append(c)
            elif self.gru:
                x = GRUCell.update(*self._gru_projections(layer, ids, x, h), h)
            else:
                x = RNNCell.update(self._joint_gates(layer, ids, x, h), self.nonlinearity)
            new_h.append(x)
        assert x is not None
        logits = x @ self.head_w if self.head_b is None else torch.addmm(self.head_b, x, self.head_w)
        h_out = torch.stack(new_h)
        return logits, (LSTMState(h_out, torch.stack(new_c)) if self.cell == "lstm" else h_out)

    def _joint_gates(self, layer: int, ids: Tensor, x: Tensor | None, h: Tensor) -> Tensor:
        """The LSTM's or vanilla RNN's pre-activations, both projections and biases in one ``addmm``."""
        if layer == 0:
            return torch.addmm(self.table.index_select(0, ids), h, self.hh0)
        assert x is not None  # the layer below's output
        weight, bias = self.upper[layer - 1]
        return torch.addmm(bias, torch.cat([x, h], 1), weight)

    def _gru_projections(self, layer: int, ids: Tensor, x: Tensor | None, h: Tensor) -> tuple[Tensor, Tensor]:
        """The GRU's input and hidden projections, apart (its reset gate scales only the hidden one)."""
        if layer == 0:
            assert self.b_hh0 is not None
            return self.table.index_select(0, ids), torch.addmm(self.b_hh0, h, self.hh0)
        assert x is not None
        w_ih, b_ih, w_hh, b_hh = self.upper[layer - 1]
        return torch.addmm(b_ih, x, w_ih), torch.addmm(b_hh, h, w_hh)
