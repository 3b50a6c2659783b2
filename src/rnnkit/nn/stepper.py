r"""``Stepper``: fast one-token-at-a-time inference for embedding -> :class:`Recurrent` -> linear models.

Generation advances every stream by one token per call, so its cost is per-call overhead plus one
matrix-vector product per layer. The plain path (``model(ids[:, None], state)``) pays for the
embedding lookup, the fused-kernel set-up of a length-1 sequence and the head as separate modules.
The stepper folds what can be folded once, when it is built:

- layer 0's input projection is precomputed for every token, :math:`T = E W_{ih}^\top + b_{ih}
  (+ b_{hh})`, so the embedding and the input matmul become one row lookup (``T[ids]``);
- for the LSTM and the vanilla RNN, the upper layers' two matrices are joined,
  :math:`[W_{ih}\; W_{hh}]`, so each layer is one ``addmm`` on ``[x; h]``.

From the pre-activations on, each layer is the cell's own ``update`` (:mod:`rnnkit.nn.cells`), or
for the in-place LSTM (below) its ``update_doubled_``: the gate equations are not written again here.

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

In place (:class:`Stream`)
--------------------------
Once the matrices are a quarter of the bytes, the small operations around them (a dozen for each
layer's gates, the state stacked and split, the layer inputs concatenated) cost more than the products.
The narrow LSTM therefore stores its g blocks doubled (exact: a power of two), so that one sigmoid
covers all four gates (:math:`\tanh(g) = 2\sigma(2g) - 1`,
:meth:`rnnkit.nn.cells.LSTMCell.update_doubled_`), and writing advances a :class:`Stream` that keeps
every layer's state in one buffer, updated in place. :meth:`Stepper.step` computes the same numbers on
a copy of the state it is given. fp32 keeps the plain update: its tokens are the plain path's, exactly.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

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


def int8_linear(weight: Tensor, bias: Tensor | None = None) -> Any:
    """``W`` ``(out, in)`` as int8, one symmetric scale per output row, with ``b`` (fp32), packed for
    PyTorch's dynamic int8 linear (``torch.ops.quantized.linear_dynamic(x, packed, True)``: the input is
    quantized per call, the product taken in integers and returned as fp32, plus ``b``); what
    :class:`torch.ao.nn.quantized.dynamic.Linear` holds. ``torch.ops.quantized.linear_unpack`` gives
    the int8 matrix and the bias back. ``RuntimeError`` where this torch build has no int8 kernels."""
    out_features, _ = weight.shape
    weight = weight.detach().float().cpu()
    scale = weight.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127  # (out,)
    zero = torch.zeros(out_features, dtype=torch.long)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _QUANTIZED_DEPRECATION, UserWarning)
            quantized = torch.quantize_per_channel(weight, scale.double(), zero, 0, torch.qint8)
            return torch.ops.quantized.linear_prepack(
                quantized, None if bias is None else bias.detach().float().cpu()
            )
    except (AttributeError, RuntimeError) as exc:  # a torch without them (removed after 2.13?)
        raise RuntimeError(f"no dynamic int8 quantization in torch {torch.__version__}: {exc}") from exc


class Projection:
    """``x W^T + b`` with the matrix ``W`` ``(out, in)`` stored in ``precision``; fp32 in and out.

    ``fp32`` keeps ``W^T`` and takes one ``addmm`` (the stepper's products as they always were);
    ``bf16`` takes the product in bf16 and adds ``b`` in fp32; ``int8`` adds ``b`` inside its kernel.

    Attributes:
        weight: what one call reads: ``W^T`` ``(in, out)`` fp32, ``W`` ``(out, in)`` bf16, or for int8
            the packed matrix of :func:`int8_linear` (also ``packed``; ``None`` in the other precisions).
    """

    def __init__(self, weight: Tensor, precision: str, bias: Tensor | None = None) -> None:
        self.precision = precision
        self.shape = tuple(weight.shape)  # (out, in)
        self.bias = None if bias is None else bias.clone()
        self.weight: Any
        self.packed = None  # int8: the matrix packed for PyTorch's int8 kernel
        if precision == "fp32":
            self.weight = weight.t().contiguous()
        elif precision == "bf16":
            self.weight = weight.to(torch.bfloat16).contiguous()
        else:
            # called through the op itself: a dynamic int8 Linear module's call adds ~5 µs of Python
            self.weight = self.packed = int8_linear(weight, self.bias)
        self.product = self._product_function()

    def _product_function(self) -> Callable[[Tensor], Tensor]:
        """``x -> x W^T + b`` (``+ b`` where there is a bias), a new fp32 tensor: one closure with what
        it reads bound in, for :class:`Stream`'s per-token loop (no attribute look-ups or branches)."""
        weight, bias, packed = self.weight, self.bias, self.packed
        if packed is not None:
            linear_dynamic = torch.ops.quantized.linear_dynamic
            return lambda x: linear_dynamic(x, packed, True)  # True: reduce_range, as the module calls it
        assert isinstance(weight, Tensor)
        if self.precision == "fp32":
            if bias is None:
                return lambda x: torch.mm(x, weight)
            return lambda x: torch.addmm(bias, x, weight)

        def bf16(x: Tensor) -> Tensor:
            x = x.to(torch.bfloat16)
            product = torch.mv(weight, x[0])[None] if x.shape[0] == 1 else F.linear(x, weight)
            return product.float() if bias is None else bias + product

        return bf16

    def __call__(self, x: Tensor, base: Tensor | None = None) -> Tensor:
        """``x`` ``(N, in)`` -> ``(N, out)`` fp32: ``x W^T`` plus ``base`` ``(N, out)`` when given (the
        token table's rows, for layer 0), else plus the bias. A new tensor, which the caller may
        overwrite."""
        if base is None:
            return self.product(x)
        if self.precision == "fp32":
            return torch.addmm(base, x, self.weight)
        return self.product(x).add_(base)  # bf16, int8: no bias of their own where a base is given

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
        in_place: the LSTM's in-place form (see :class:`Stream`): its g blocks stored doubled, each step
            through ``LSTMCell.update_doubled_``. ``None`` (default): for bf16 and int8; fp32 keeps the
            plain update (and so exactly the plain path's tokens) unless asked.

    Attributes:
        projections: every recurrent matrix one step reads (each a :class:`Projection`), bottom layer
            first.
    """

    @torch.no_grad()
    def __init__(
        self,
        embedding: nn.Embedding,
        rnn: Recurrent,
        head: nn.Linear,
        *,
        precision: str = "fp32",
        in_place: bool | None = None,
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
        # the narrow LSTM runs in place (see Stream): its g blocks are stored doubled
        if in_place and rnn.cell != "lstm":
            raise ValueError(f"in_place: for the LSTM only, not the {rnn.cell}")
        self.doubled_g = rnn.cell == "lstm" and (precision != "fp32" if in_place is None else in_place)
        double = LSTMCell.double_g if self.doubled_g else (lambda weight: weight)
        for layer in range(rnn.num_layers):
            w_ih, w_hh, b_ih, b_hh = rnn._layer_weights(layer, 0)
            zeros = w_ih.new_zeros(w_ih.shape[0])
            b_ih = zeros if b_ih is None else b_ih
            b_hh = zeros if b_hh is None else b_hh
            if layer == 0:
                bias = b_ih if self.gru else double(b_ih + b_hh)
                self.table = torch.addmm(bias, embedding.weight, double(w_ih).t())
                self.hh0 = Projection(double(w_hh), precision, b_hh if self.gru else None)
            elif self.gru:
                self.upper_gru.append((Projection(w_ih, precision, b_ih), Projection(w_hh, precision, b_hh)))
            else:
                self.upper.append(
                    Projection(double(torch.cat([w_ih, w_hh], 1)), precision, double(b_ih + b_hh))
                )
        # (H, V) for addmm; in place, a transposed view of the (V, H) copy, which the one-stream
        # matrix-vector product reads in order
        rows = head.weight.detach().clone()  # (V, H): a copy, not a view of the live weight
        self.head_w = rows.t() if self.doubled_g else rows.t().contiguous()
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
        if self.doubled_g:  # the in-place LSTM, on a copy of the state (see Stream)
            stream = Stream(self, state, ids.shape[0])
            logits = stream.advance(ids)
            return logits, stream.state_views()
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

    def stream(self, state: State | None = None, batch: int = 1) -> Stream:
        """``batch`` streams from ``state`` (``None``: zeros), advanced in place one token at a time: see
        :class:`Stream`."""
        return Stream(self, state, batch)

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


class Stream:
    """Streams of a :class:`Stepper` that own their state and advance it in place: ``advance(ids)``
    returns the logits and keeps the new state, where :meth:`Stepper.step` takes a state and returns a
    new one. Made for a writing loop, which only ever hands the last state back.

    The in-place LSTM (by default the ``bf16`` and ``int8`` ones: the stepper stores their g blocks
    doubled) runs in place:
    the hidden states of all layers sit side by side in one buffer, ``[h_0 ... h_{L-1}]`` ``(N, L*H)``,
    so the input of layer ``l > 0``, :math:`[x; h] = [h_{l-1}^{(t)}; h_l^{(t-1)}]`, is one slice of it
    (layer ``l - 1`` has just written its new state there), each layer writes its new state where the
    next layer and the next token read it, and the memory cells are updated where they lie
    (:meth:`rnnkit.nn.cells.LSTMCell.update_doubled_`). No state is stacked or split and no input
    concatenated around a token: a third of a one-stream token's time. Every other stepper (fp32 by
    default, the GRU, the vanilla RNN) advances through :meth:`Stepper.step`.

    Attributes:
        state: the streams' state now, in :meth:`Stepper.step`'s format (a copy).
    """

    @torch.no_grad()
    def __init__(self, stepper: Stepper, state: State | None, batch: int) -> None:
        self.stepper = stepper
        self.in_place = stepper.doubled_g
        self.batch = batch
        self._state = state  # the functional path's (None: zeros, made by the first step)
        if not self.in_place:
            return
        layers, size, table = stepper.layers, stepper.hidden, stepper.table
        self.hs = table.new_zeros(batch, layers * size)  # [h_0 ... h_{L-1}] of each stream
        self.cs = table.new_zeros(layers, batch, size)
        if state is not None:
            assert isinstance(state, LSTMState)
            self.hs.view(batch, layers, size).copy_(state.h.transpose(0, 1))
            self.cs.copy_(state.c)
        # what each token does, bound once: layer 0's product, then the upper layers' (product, the
        # [x; h] it reads, its memory cell, where its h goes)
        outputs = [self.hs[:, layer * size : (layer + 1) * size] for layer in range(layers)]
        cells = self.cs.unbind(0)
        self.first = (stepper.hh0.product, cells[0], outputs[0])
        inputs = [self.hs[:, (layer - 1) * size : (layer + 1) * size] for layer in range(1, layers)]
        self.upper = [
            (projection.product, x_h, cells[layer], outputs[layer])
            for layer, (projection, x_h) in enumerate(zip(stepper.upper, inputs, strict=True), start=1)
        ]
        self.last = outputs[-1]
        self.one_cpu_stream = batch == 1 and table.device.type == "cpu"
        self.head_rows = stepper.head_w.t()  # (V, H): the narrow paths' head is stored so, contiguous

    def advance(self, ids: Tensor) -> Tensor:
        """One token per stream, ``ids`` ``(N,)`` -> logits ``(N, V)``; the state moves on. Nothing it
        reads or writes requires a gradient (the stepper is built under ``no_grad``), so it records no
        graph without a ``no_grad`` of its own (whose entry and exit would cost a few µs a token)."""
        stepper = self.stepper
        if not self.in_place:
            logits, self._state = stepper.step(ids, self._state)
            return logits
        table, update = stepper.table, LSTMCell.update_doubled_
        # one stream on the CPU: the token's row as a view (no host sync to speak of on the CPU),
        # cheaper than index_select
        rows = table[int(ids)] if self.one_cpu_stream else table.index_select(0, ids)
        product, c, h = self.first
        update(product(h).add_(rows), c, h)
        for product, x_h, c, h in self.upper:
            update(product(x_h), c, h)
        last, head_w, head_b = self.last, stepper.head_w, stepper.head_b
        if head_b is None:
            return last @ head_w
        if self.one_cpu_stream:  # the matrix-vector kernel: ~4 µs less than addmm on one row
            return torch.mv(self.head_rows, last[0]).add_(head_b)[None]
        return torch.addmm(head_b, last, head_w)

    def state_views(self) -> State:
        """:attr:`state` without the copy: views of the buffers, valid until the next :meth:`advance`."""
        stepper = self.stepper
        if not self.in_place:
            if self._state is None:  # not advanced yet from zeros: the zeros step() would start from
                zeros = stepper.table.new_zeros(stepper.layers, self.batch, stepper.hidden)
                return LSTMState(zeros, zeros.clone()) if stepper.cell == "lstm" else zeros
            return self._state
        return LSTMState(self.hs.view(-1, stepper.layers, stepper.hidden).transpose(0, 1), self.cs)

    @property
    def state(self) -> State:
        found = self.state_views()
        if isinstance(found, LSTMState):
            return LSTMState(found.h.contiguous().clone(), found.c.clone())
        return found.clone()
