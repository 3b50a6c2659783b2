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
- ``"int8"``: 8-bit integers, one scale per output row (symmetric, :math:`s_j = \max_k |W_{jk}| / 127`),
  a quarter of the bytes, through PyTorch's dynamic quantization
  (:class:`torch.ao.nn.quantized.dynamic.Linear`: the input is quantized per call, the product is
  taken in integers and returned as fp32). CPU only. torch 2.13 deprecates creating quantized tensors
  in favour of the torchao package, which rnnkit does not depend on; that one warning is silenced
  where the int8 matrices are built, and a torch without them makes ``int8`` a ``RuntimeError``.

The token table and the head stay fp32 in every precision: the table is read one row per token, and
the head, 1% of a 2x512 model's bytes, sits right before the softmax.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.nn.cells import GRUCell, LSTMCell, LSTMState, RNNCell, State
from rnnkit.nn.recurrent import Recurrent

#: What ``Stepper(precision=...)`` stores the recurrent matrices in.
PRECISIONS = ("fp32", "bf16", "int8")

#: torch 2.13 deprecates creating quantized tensors (pytorch/pytorch#184982) in favour of the torchao
#: package, which rnnkit does not depend on; the int8 path creates them once, when it is built.
_QUANTIZED_DEPRECATION = r"torch\.quantize_per_tensor, torch\.quantize_per_channel"


def int8_linear(weight: Tensor, bias: Tensor | None = None) -> nn.Module:
    """``x -> x W^T + b`` with ``W`` ``(out, in)`` stored as int8, one symmetric scale per output row
    (``b`` stays fp32): a :class:`torch.ao.nn.quantized.dynamic.Linear` (fp32 in, fp32 out).
    ``RuntimeError`` where this torch build has no int8 kernels."""
    out_features, in_features = weight.shape
    weight = weight.detach().float().cpu()
    scale = weight.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127  # (out,)
    zero = torch.zeros(out_features, dtype=torch.long)
    try:
        from torch.ao.nn.quantized.dynamic import Linear  # imported only by those who ask for int8

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _QUANTIZED_DEPRECATION, UserWarning)
            module = Linear(in_features, out_features, bias_=bias is not None, dtype=torch.qint8)
            quantized = torch.quantize_per_channel(weight, scale.double(), zero, 0, torch.qint8)
            module.set_weight_bias(quantized, None if bias is None else bias.detach().float().cpu())
    except (ImportError, AttributeError) as exc:  # a torch without them (removed after 2.13?)
        raise RuntimeError(f"no dynamic int8 quantization in torch {torch.__version__}: {exc}") from exc
    return module


class Projection:
    """``x W^T + b`` with the matrix ``W`` ``(out, in)`` stored in ``precision``; fp32 in and out.

    ``fp32`` keeps ``W^T`` and takes one ``addmm`` (the stepper's products as they always were);
    ``bf16`` takes the product in bf16 and adds ``b`` in fp32; ``int8`` adds ``b`` inside its kernel.

    Attributes:
        weight: what one call reads: ``W^T`` ``(in, out)`` fp32, ``W`` ``(out, in)`` bf16, or the int8
            module of :func:`int8_linear`.
    """

    def __init__(self, weight: Tensor, precision: str, bias: Tensor | None = None) -> None:
        self.precision = precision
        self.shape = tuple(weight.shape)  # (out, in)
        self.bias = None if bias is None else bias.clone()
        self.weight: Tensor | nn.Module
        if precision == "fp32":
            self.weight = weight.t().contiguous()
        elif precision == "bf16":
            self.weight = weight.to(torch.bfloat16).contiguous()
        else:
            self.weight = int8_linear(weight, self.bias)

    def __call__(self, x: Tensor, base: Tensor | None = None) -> Tensor:
        """``x`` ``(N, in)`` -> ``(N, out)`` fp32: ``x W^T`` plus ``base`` ``(N, out)`` when given (the
        token table's rows, for layer 0), else plus the bias."""
        weight, add = self.weight, self.bias if base is None else base
        if isinstance(weight, nn.Module):  # int8: its bias is inside
            return weight(x) if base is None else base + weight(x)
        if self.precision == "fp32":
            assert add is not None
            return torch.addmm(add, x, weight)
        x = x.to(weight.dtype)
        # one stream: the matrix-vector kernel, faster than linear on one row; (N, out) bf16
        product = torch.mv(weight, x[0])[None] if x.shape[0] == 1 else F.linear(x, weight)
        return product.float() if add is None else add + product  # fp32 + bf16: fp32

    @property
    def nbytes(self) -> int:
        """Bytes of the matrix one call reads."""
        weight = self.weight
        if isinstance(weight, Tensor):
            return weight.numel() * weight.element_size()
        out_features, in_features = self.shape  # int8: a byte each, plus a scale per row
        return out_features * in_features + 4 * out_features


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
