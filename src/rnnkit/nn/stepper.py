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

Narrower weights (``precision``)
--------------------------------
One stream is a chain of matrix-vector products: each token reads every recurrent matrix once, and
does little arithmetic with it, so its speed is the speed at which the weights stream from memory.
``precision`` stores the recurrent matrices (layer 0's :math:`W_{hh}` and the upper layers' joined
matrices; :math:`W_{hh}` and :math:`W_{ih}` apart for the GRU) narrower:

- ``"fp32"`` (default): as trained, the products above; the exact tokens of the plain path.
- ``"bf16"``: bfloat16 (half the bytes). A product is ``mv``/``linear`` in bf16, accumulated in fp32
  by the kernel and added to the fp32 bias, so the gates, the cell state and the logits stay fp32.
  Fast where the hardware computes bf16 natively (AVX512-BF16 or AMX CPUs, GPUs).
- ``"int8"``: 8-bit integers, one scale per output row (symmetric, :math:`s_j = \max_k |W_{jk}| / 127`,
  the scale kept in bf16), a quarter of the bytes, through PyTorch's weight-only int8 kernel
  (``torch._weight_int8pack_mm``): the input is rounded to bf16 as for ``"bf16"``, the int8 weights are
  widened inside the kernel and the products accumulated in fp32, so only the weights are quantized,
  not the activations. CPU only (rnnkit's choice: the kernel is private and checked here on CPUs); a
  torch without it makes ``int8`` a ``RuntimeError`` when the stepper is built.

The token table and the head stay fp32 in every precision: the table is read one row per token, and
the head, 1% of a 2x512 model's bytes, sits right before the softmax.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.nn.cells import GRUCell, LSTMCell, LSTMState, RNNCell, State
from rnnkit.nn.recurrent import Recurrent

#: What ``Stepper(precision=...)`` stores the recurrent matrices in.
PRECISIONS = ("fp32", "bf16", "int8")


def int8_weight(weight: Tensor) -> tuple[Tensor, Tensor]:
    r"""``W`` ``(out, in)`` as int8 with one symmetric scale per output row: ``(q, s)``, ``q`` ``(out, in)``
    int8 and ``s`` ``(out,)`` bf16 with :math:`W_{jk} \approx s_j q_{jk}`, :math:`|q_{jk}| \le 127`.

    The scale is :math:`\max_k |W_{jk}| / 127` rounded to bf16 (the type the kernel takes it in), and
    ``q`` is rounded against that rounded scale, so ``s * q`` is the matrix the kernel multiplies by."""
    weight = weight.detach().float().cpu()
    scale = (weight.abs().amax(dim=1).clamp_min(torch.finfo(torch.bfloat16).tiny) / 127).to(torch.bfloat16)
    quantized = (weight / scale.float()[:, None]).round_().clamp_(-127, 127).to(torch.int8)  # (out, in)
    return quantized.contiguous(), scale


def int8_product(x: Tensor, quantized: Tensor, scale: Tensor) -> Tensor:
    """``x`` ``(N, in)`` bf16 times the int8 matrix of :func:`int8_weight`, transposed: ``(N, out)`` bf16,
    accumulated in fp32 by the kernel. ``RuntimeError`` where this torch has no such kernel."""
    try:
        kernel = torch._weight_int8pack_mm
    except AttributeError as exc:  # a torch without it (it is private, and may move)
        raise RuntimeError(f"no weight-only int8 kernel in torch {torch.__version__}") from exc
    return kernel(x, quantized, scale)


class Projection:
    """``x W^T + b`` with the matrix ``W`` ``(out, in)`` stored in ``precision``; fp32 in and out.

    ``fp32`` keeps ``W^T`` and takes one ``addmm`` (the stepper's products as they always were);
    ``bf16`` and ``int8`` take the product in bf16 (the input rounded to bf16, accumulated in fp32 by the
    kernel) and add ``b`` in fp32.

    Attributes:
        weight: what one call reads: ``W^T`` ``(in, out)`` fp32, ``W`` ``(out, in)`` bf16, or ``W``'s
            int8 ``q`` ``(out, in)`` of :func:`int8_weight`.
        scale: int8 only: the rows' scales ``(out,)`` bf16; else ``None``.
    """

    def __init__(self, weight: Tensor, precision: str, bias: Tensor | None = None) -> None:
        self.precision = precision
        self.shape = tuple(weight.shape)  # (out, in)
        self.bias = None if bias is None else bias.clone()
        self.scale: Tensor | None = None
        if precision == "fp32":
            self.weight = weight.t().contiguous()
        elif precision == "bf16":
            self.weight = weight.to(torch.bfloat16).contiguous()
        else:
            self.weight, self.scale = int8_weight(weight)
            # once here, so that a torch without the kernel fails when the stepper is built
            probe = self.weight.new_zeros(1, self.shape[1], dtype=torch.bfloat16)
            int8_product(probe, self.weight, self.scale)

    def __call__(self, x: Tensor, base: Tensor | None = None) -> Tensor:
        """``x`` ``(N, in)`` -> ``(N, out)`` fp32: ``x W^T`` plus ``base`` ``(N, out)`` when given (the
        token table's rows, for layer 0), else plus the bias."""
        weight, add = self.weight, self.bias if base is None else base
        if self.precision == "fp32":
            assert add is not None
            return torch.addmm(add, x, weight)
        x = x.to(torch.bfloat16)
        if self.scale is not None:  # int8; (N, out) bf16
            product = torch._weight_int8pack_mm(x, weight, self.scale)
        else:  # one stream: the matrix-vector kernel, faster than linear on one row; (N, out) bf16
            product = torch.mv(weight, x[0])[None] if x.shape[0] == 1 else F.linear(x, weight)
        return product.float() if add is None else add + product  # fp32 + bf16: fp32

    @property
    def nbytes(self) -> int:
        """Bytes of what one call reads: the matrix (and int8's scales)."""
        found = self.weight.numel() * self.weight.element_size()
        return found if self.scale is None else found + self.scale.numel() * self.scale.element_size()


class Stepper:
    """Precomputed weights of ``embedding -> rnn -> head`` for :meth:`step`.

    Args:
        embedding: token embedding ``(V, E)``.
        rnn: a unidirectional :class:`Recurrent` (``lstm``, ``gru`` or ``rnn``) with input size ``E``.
        head: linear map from the hidden size to the ``V`` logits.
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"``: what the recurrent matrices are stored in (see
            the module's notes). Computation and state stay fp32.

    Attributes:
        projections: every recurrent matrix one step reads (each a :class:`Projection`), bottom layer
            first.
    """

    @torch.no_grad()
    def __init__(
        self, embedding: nn.Embedding, rnn: Recurrent, head: nn.Linear, *, precision: str = "fp32"
    ) -> None:
        if rnn.num_directions != 1:
            raise ValueError("rnn: the stepper needs a unidirectional Recurrent")
        if precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.cell = rnn.cell
        self.nonlinearity = rnn.nonlinearity
        self.layers = rnn.num_layers
        self.hidden = rnn.hidden_size
        self.gru = rnn.cell == "gru"
        self.table: Tensor  # (V, G*H): layer 0's input projection of every token
        self.hh0: Projection  # layer 0's recurrent matrix (GRU: with its hidden bias, which the reset
        # gate scales; the other cells' is in the table)
        self.upper: list[Projection] = []  # LSTM, RNN: [W_ih W_hh] with b_ih + b_hh
        self.upper_gru: list[tuple[Projection, Projection]] = []  # GRU: W_ih with b_ih, W_hh with b_hh
        for layer in range(rnn.num_layers):
            w_ih, w_hh, b_ih, b_hh = rnn._layer_weights(layer, 0)
            zeros = w_ih.new_zeros(w_ih.shape[0])
            b_ih = zeros if b_ih is None else b_ih
            b_hh = zeros if b_hh is None else b_hh
            if layer == 0:
                self.table = torch.addmm(b_ih if self.gru else b_ih + b_hh, embedding.weight, w_ih.t())
                self.hh0 = Projection(w_hh, precision, b_hh if self.gru else None)
            elif self.gru:
                self.upper_gru.append((Projection(w_ih, precision, b_ih), Projection(w_hh, precision, b_hh)))
            else:
                self.upper.append(Projection(torch.cat([w_ih, w_hh], 1), precision, b_ih + b_hh))
        self.head_w = head.weight.t().contiguous()
        self.head_b = head.bias.clone() if head.bias is not None else None

    @property
    def projections(self) -> list[Projection]:
        found = [self.hh0, *self.upper]
        for w_ih, w_hh in self.upper_gru:
            found += [w_ih, w_hh]
        return found

    @property
    def weight_bytes(self) -> int:
        """Bytes of the recurrent matrices one step reads (the table's row and the head aside)."""
        return sum(p.nbytes for p in self.projections)

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
        h_in = hs.unbind(0)  # L views (N, H): one call, not one per layer
        c_in = cs.unbind(0) if cs is not None else ()
        new_h, new_c = [], []
        x = None
        for layer in range(self.layers):
            h = h_in[layer]
            if self.cell == "lstm":
                x, c = LSTMCell.update(self._joint_gates(layer, ids, x, h), c_in[layer])
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
        """The LSTM's or vanilla RNN's pre-activations, both projections and biases in one product."""
        if layer == 0:
            return self.hh0(h, self.table.index_select(0, ids))
        assert x is not None  # the layer below's output
        return self.upper[layer - 1](torch.cat([x, h], 1))  # (N, G*H) from [x; h] (N, 2H)

    def _gru_projections(self, layer: int, ids: Tensor, x: Tensor | None, h: Tensor) -> tuple[Tensor, Tensor]:
        """The GRU's input and hidden projections, apart (its reset gate scales only the hidden one)."""
        if layer == 0:
            return self.table.index_select(0, ids), self.hh0(h)
        assert x is not None
        w_ih, w_hh = self.upper_gru[layer - 1]
        return w_ih(x), w_hh(h)
