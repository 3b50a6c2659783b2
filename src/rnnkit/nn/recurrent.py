"""``Recurrent``: the one recurrent layer users build with.

A stack of ``num_layers`` layers of one cell kind (vanilla RNN, LSTM or GRU), each uni- or
bidirectional, batch-first, exact on padded batches. Two backends compute the same function on the
same parameters:

- ``"fused"`` runs PyTorch's own ``nn.LSTM``/``nn.GRU``/``nn.RNN`` on this layer's parameters, and
  through it the fused kernels (cuDNN on NVIDIA GPUs, oneDNN or ATen on CPU), the fastest path for
  training;
- ``"unrolled"`` is an explicit Python loop over time that calls the cell's ``step`` (see
  :mod:`rnnkit.nn.cells`). It is slower, but every intermediate state is an ordinary tensor in the
  autograd graph, which :meth:`Recurrent.unroll` hands back for inspection and gradient studies.

Parameter names and shapes are exactly those of ``torch.nn.RNN``/``LSTM``/``GRU`` built with the same
arguments (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, with a
``_reverse`` suffix for the backward direction), so state dicts load both ways.

Reference: M. Schuster and K. Paliwal, "Bidirectional recurrent neural networks", IEEE Trans. Signal
Processing 45(11), 1997; A. Graves et al., "Speech recognition with deep recurrent neural networks",
arXiv:1303.5778 (deep bidirectional stacks).
"""

from __future__ import annotations

import collections
import contextlib
import operator
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.nn.cells import LSTMCell, LSTMState, State, cell_class, check_sizes, reset_uniform

BACKENDS = ("fused", "unrolled")


class Unrolled(NamedTuple):
    """What :meth:`Recurrent.unroll` returns.

    Attributes:
        output: ``(N, L, D*H_out)``, as from ``forward``.
        state: the final state, as from ``forward``.
        steps: ``steps[layer][direction][t]`` is the cell state right after step ``t`` (a tensor, or an
            :class:`LSTMState`), ``(N, H_out)`` each. These are the very tensors the next step reads, so
            ``torch.autograd.grad(loss, steps[0][0])`` gives :math:`\\partial E / \\partial s_t` for every t.
            Direction 1 (backward) is indexed by time too: ``steps[l][1][t]`` comes after
            ``steps[l][1][t+1]``.
    """

    output: Tensor
    state: State
    steps: list[list[list[State]]]


FUSED_SHAPES: collections.Counter | None = None
"""Set to a ``Counter`` to count the distinct calls the fused kernel sees: ``(kind, dtype, shape)``,
where the dtype is the one the kernel computes in (the autocast dtype under autocast). Each distinct
shape can cost the oneDNN kernel a primitive of its own; tests and bench/memory.py count them."""


def _compute_dtype(x: Tensor) -> torch.dtype:
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return x.dtype


def _count_shape(kind: str, x: Tensor, batch_sizes: Tensor | None = None) -> None:
    if FUSED_SHAPES is not None:
        # a packed call's shape is its whole pattern of lengths: the batch sizes at every step
        shape = tuple(x.shape) if batch_sizes is None else (tuple(x.shape), tuple(batch_sizes.tolist()))
        FUSED_SHAPES[(kind, str(_compute_dtype(x)).removeprefix("torch."), shape)] += 1


@contextlib.contextmanager
def _packed_precision(x: Tensor) -> Iterator[bool]:
    """Packed sequences (padded batches with ``lengths``) run in fp32 under CPU bf16 autocast.

    The packed kernel's shape is the batch's whole pattern of lengths, so almost every batch of
    sentences is a new shape; under bf16 on CPU (oneDNN) each new shape built and kept a primitive:
    measured on an AMX Sapphire Rapids, a 2x256 bidirectional LSTM over batches of 32 random lengths
    grew by 5 MB a batch without bound (the tagger reached 8.3 GB on a Zen 5 machine) and ran 8x slower
    than fp32 (0.45 s against 0.055 s a batch). In fp32 memory stays flat. Unpacked calls (every
    sequence of the batch full length, or no lengths) keep bf16: their shapes are few.
    """
    exact = x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and _compute_dtype(x) != torch.float32
    if not exact:
        yield False
        return
    with torch.autocast("cpu", enabled=False):
        yield True


class Recurrent(nn.Module):
    r"""A deep, optionally bidirectional recurrent layer over batch-first sequences.

    Layer :math:`l` at step :math:`t` reads its own state at :math:`t-1` (at :math:`t+1` in the backward
    direction) and the output of layer :math:`l-1` at step :math:`t`, which for a bidirectional stack is
    the concatenation of both directions:

    .. math::
        \begin{aligned}
        \overrightarrow{s}^{(l)}_t &= \mathrm{cell}(x^{(l)}_t, \overrightarrow{s}^{(l)}_{t-1}), \qquad
        \overleftarrow{s}^{(l)}_t = \mathrm{cell}'(x^{(l)}_t, \overleftarrow{s}^{(l)}_{t+1}) \\
        y^{(l)}_t &= [\overrightarrow{h}^{(l)}_t ; \overleftarrow{h}^{(l)}_t], \qquad
        x^{(l+1)}_t = \mathrm{dropout}(y^{(l)}_t), \qquad x^{(0)}_t = x_t
        \end{aligned}

    where :math:`\mathrm{cell}` and :math:`\mathrm{cell}'` have their own weights and :math:`h` is the
    cell's output (the state itself for the RNN and GRU, :math:`h_t` of :math:`(h_t, c_t)` for the LSTM).
    Dropout acts between layers only, in training mode, as in PyTorch.

    With ``lengths``, sequence :math:`b` is read only up to its own length :math:`T_b`: outputs at padded
    steps are zero, the backward direction starts at step :math:`T_b - 1` from the initial state, and the
    final state is the state at the sequence's own last real step. A sequence therefore gives the same
    result alone and inside any padded batch.

    Args:
        input_size: :math:`H_{in}`, features per step of the input.
        hidden_size: :math:`H_{out}`, features of each direction's state.
        cell: ``"lstm"`` (default), ``"gru"`` or ``"rnn"`` (see :data:`rnnkit.nn.cells.CELLS`).
        num_layers: :math:`L`, stacked layers. Default 1.
        bidirectional: add a backward direction to every layer (:math:`D = 2`). Default ``False``.
        dropout: dropout probability on the outputs of every layer but the last. Default 0.
        backend: ``"fused"`` (default) or ``"unrolled"``; same function, same parameters.
        nonlinearity: ``"tanh"`` (default) or ``"relu"``, for ``cell="rnn"`` only.
        bias: learn the bias vectors. Default ``True``.

    Inputs: ``input, lengths=None, state=None``
        - input: ``(N, T, H_in)``.
        - lengths: ``None`` (every sequence has length T) or an integer tensor ``(N,)`` with values in
          ``[1, T]``.
        - state: ``None`` (zeros) or the initial state, ``(L*D, N, H_out)``, a pair of those for the LSTM.
          Index ``l*D + d`` holds layer ``l``, direction ``d``, as in PyTorch.

    Outputs: ``(output, state)``
        - output: ``(N, T, D*H_out)``, the last layer's outputs, zero at padded steps.
        - state: the final state, shaped like the input state; an :class:`~rnnkit.nn.cells.LSTMState`
          ``(h, c)`` for the LSTM.

    Attributes:
        weight_ih_l[k], weight_hh_l[k], bias_ih_l[k], bias_hh_l[k]: as in ``torch.nn.LSTM`` (``G`` gate
            blocks: 1 RNN, 3 GRU, 4 LSTM), with the ``_reverse`` suffix for the backward direction.
            Initialised from :math:`\mathcal{U}(-1/\sqrt{H_{out}}, 1/\sqrt{H_{out}})`, as in PyTorch.

    Examples:
        >>> rnn = Recurrent(8, 16, cell="gru", num_layers=2, bidirectional=True)
        >>> x = torch.randn(3, 5, 8)
        >>> out, h = rnn(x, lengths=torch.tensor([5, 2, 4]))
        >>> out.shape, h.shape
        (torch.Size([3, 5, 32]), torch.Size([4, 3, 16]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        cell: str = "lstm",
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        backend: str = "fused",
        nonlinearity: str = "tanh",
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_sizes(input_size, hidden_size)
        self.cell_type = cell_class(cell)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers: expected a positive integer, got {num_layers!r}")
        if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        if nonlinearity != "tanh" and cell != "rnn":
            raise ValueError(f"nonlinearity: only cell='rnn' takes one, got {nonlinearity!r} for {cell!r}")
        self.cell = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.dropout = float(dropout)
        self.backend = backend
        self.nonlinearity = nonlinearity
        self.bias = bias
        self._step = self.cell_type.step_function(nonlinearity)

        gates = self.cell_type.num_chunks * hidden_size
        self._flat_weight_names: list[str] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for direction in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes: dict[str, tuple[int, ...]] = {
                    "weight_ih": (gates, layer_input),
                    "weight_hh": (gates, hidden_size),
                }
                if bias:
                    shapes |= {"bias_ih": (gates,), "bias_hh": (gates,)}
                for kind, shape in shapes.items():
                    self.register_parameter(kind + suffix, nn.Parameter(torch.empty(shape)))
                    self._flat_weight_names.append(kind + suffix)
        self.reset_parameters()
        self._twin_made: _TorchTwin | None = None

    @property
    def _twin(self) -> _TorchTwin:
        """The torch layer that runs the fused kernels, made at first use: building it registers its
        own (meta) parameters, which a model's size check, counting registrations while the model is
        built, would otherwise count as this layer's."""
        if self._twin_made is None:
            self._twin_made = _TorchTwin(self)
        return self._twin_made

    def reset_parameters(self) -> None:
        reset_uniform(self, self.hidden_size)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}, cell={self.cell!r}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.bidirectional:
            text += ", bidirectional=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.backend != "fused":
            text += f", backend={self.backend!r}"
        if self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        if not self.bias:
            text += ", bias=False"
        return text

    @property
    def is_lstm(self) -> bool:
        return issubclass(self.cell_type, LSTMCell)

    @property
    def output_size(self) -> int:
        """Features per step of ``output``: ``D * hidden_size``."""
        return self.num_directions * self.hidden_size

    def _layer_weights(
        self, layer: int, direction: int
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        if not self.bias:
            return getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix), None, None
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        w_ih, w_hh, b_ih, b_hh = (getattr(self, name + suffix) for name in names)
        return w_ih, w_hh, b_ih, b_hh

    # ----------------------------------------------------------------------------------------------
    # validation

    def _check(self, input: Tensor, lengths: Tensor | None, state: State | None) -> Tensor | None:
        if not isinstance(input, Tensor) or input.dim() != 3:
            shape = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"input: expected a 3-D batch-first tensor (N, T, H_in), got {shape}")
        batch, steps, features = input.shape
        if features != self.input_size:
            raise ValueError(f"input: expected {self.input_size} features in the last dim, got {features}")
        if steps < 1 or batch < 1:
            raise ValueError(f"input: expected at least one sequence and one step, got {tuple(input.shape)}")
        if lengths is not None:
            if not isinstance(lengths, Tensor):
                lengths = torch.as_tensor(lengths)
            if lengths.dim() != 1 or lengths.shape[0] != batch:
                raise ValueError(f"lengths: expected shape ({batch},), got {tuple(lengths.shape)}")
            if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
                raise ValueError(f"lengths: expected an integer tensor, got {lengths.dtype}")
            low, high = int(lengths.min()), int(lengths.max())
            if low < 1 or high > steps:
                raise ValueError(f"lengths: expected values in [1, {steps}] (T), got min {low}, max {high}")
            if low == steps:  # nothing is padded: take the faster unpacked path
                lengths = None
        if state is not None:
            expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
            parts = tuple(state) if self.is_lstm else (state,)
            if self.is_lstm and len(parts) != 2:
                raise ValueError("state: expected a pair (h, c) for the LSTM")
            for part in parts:
                if not isinstance(part, Tensor) or tuple(part.shape) != expected:
                    got = tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
                    raise ValueError(f"state: expected shape {expected} (L*D, N, H_out), got {got}")
        return lengths

    def _initial_state(self, input: Tensor, state: State | None) -> State:
        if state is not None:
            return LSTMState(*state) if self.is_lstm else state
        zeros = input.new_zeros(self.num_layers * self.num_directions, input.shape[0], self.hidden_size)
        return LSTMState(zeros, zeros) if self.is_lstm else zeros

    # ----------------------------------------------------------------------------------------------
    # forward

    def forward(self, input: Tensor, lengths: Tensor | None = None, state: State | None = None):
        lengths = self._check(input, lengths, state)
        state = self._initial_state(input, state)
        if self.backend == "fused":
            return self._forward_fused(input, lengths, state)
        output, final, _ = self._forward_unrolled(input, lengths, state, keep_steps=False)
        return output, final

    def unroll(self, input: Tensor, lengths: Tensor | None = None, state: State | None = None) -> Unrolled:
        """Run the explicit loop over time (whatever ``backend`` is) and keep every step's state.

        Returns an :class:`Unrolled` ``(output, state, steps)``; ``output`` and ``state`` equal what
        ``forward`` returns.
        """
        lengths = self._check(input, lengths, state)
        state = self._initial_state(input, state)
        return Unrolled(*self._forward_unrolled(input, lengths, state, keep_steps=True))

    def _forward_fused(self, input: Tensor, lengths: Tensor | None, state: State):
        hx = tuple(state) if self.is_lstm else state
        if lengths is None:
            _count_shape("padded", input)
            output, hidden = self._twin(self, input, hx)
        else:
            with _packed_precision(input) as exact:
                if exact:  # see _packed_precision: the packed kernel in fp32 under CPU bf16 autocast
                    input = input.float()
                    hx = tuple(h.float() for h in hx) if isinstance(hx, tuple) else hx.float()
                # the twin sorts the batch by length (and the state with it) and restores the order after
                packed = pack_padded_sequence(input, lengths.cpu(), batch_first=True, enforce_sorted=False)
                _count_shape("packed", packed.data, packed.batch_sizes)
                out_packed, hidden = self._twin(self, packed, hx)
            output, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=input.shape[1])
        return output, (LSTMState(*hidden) if self.is_lstm else hidden)

    def _forward_unrolled(self, input: Tensor, lengths: Tensor | None, state: State, keep_steps: bool):
        _batch, steps, _ = input.shape
        # mask[t] is (N, 1): True where step t is a real step of that sequence.
        mask = None
        if lengths is not None:
            real = torch.arange(steps, device=input.device)[None, :] < lengths.to(input.device)[:, None]
            mask = real.T.unsqueeze(-1)  # (T, N, 1)
        finals: list[State] = []
        trace: list[list[list[State]]] = []
        layer_input = input
        for layer in range(self.num_layers):
            outputs, layer_trace = [], []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                s = (
                    LSTMState(state.h[index], state.c[index])
                    if isinstance(state, LSTMState)
                    else state[index]
                )
                w_ih, w_hh, b_ih, b_hh = self._layer_weights(layer, direction)
                gi = F.linear(layer_input, w_ih, b_ih)  # (N, T, G*H): one matmul for every step
                ys: list[Tensor] = [input] * steps  # placeholders, all overwritten below
                kept: list[State] = [s] * steps
                for t in reversed(range(steps)) if direction else range(steps):
                    new = self._step(gi[:, t], s, w_hh, b_hh)
                    if mask is None:
                        s = new
                        ys[t] = _output(new)
                    else:
                        m = mask[t]
                        s = _where(m, new, s)
                        h = _output(s)
                        ys[t] = torch.where(m, h, torch.zeros_like(h))
                    kept[t] = s
                outputs.append(torch.stack(ys, dim=1))  # (N, T, H)
                finals.append(s)
                layer_trace.append(kept)
            trace.append(layer_trace)
            layer_output = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)  # (N, T, D*H)
            last = layer == self.num_layers - 1
            layer_input = layer_output if last else F.dropout(layer_output, self.dropout, self.training)
        # one (L*D, N, H) tensor per part of the state: h and c for the LSTM, the state itself otherwise
        stacked = [torch.stack(part) for part in zip(*(_parts(f) for f in finals), strict=True)]
        final = LSTMState(*stacked) if self.is_lstm else stacked[0]
        return layer_input, final, trace if keep_steps else []

    # ----------------------------------------------------------------------------------------------
    # device moves: keep cuDNN's weights in one contiguous buffer, as torch.nn.RNNBase does

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        self.flatten_parameters()
        return result

    def flatten_parameters(self) -> None:
        """Lay the weights out in one contiguous cuDNN buffer (``torch.nn.RNNBase.flatten_parameters`` on
        these parameters). A no-op except on a CUDA device."""
        self._twin.flatten(self)


class _TorchTwin:
    """PyTorch's own ``nn.LSTM``/``nn.GRU``/``nn.RNN``, configured as a :class:`Recurrent` and holding that
    Recurrent's parameters: its ``forward`` is PyTorch's public way into the fused kernels, and its
    ``flatten_parameters`` into cuDNN's weight layout.

    The torch layer is built on the meta device (its own initial weights take no memory) and then given
    the Recurrent's ``nn.Parameter`` objects themselves, so training, optimizer steps, loading and device
    moves act on both at once with no copy. This holder is no ``nn.Module``, so the torch layer stays out
    of the Recurrent's module tree: it adds nothing to ``parameters()``, ``state_dict()`` or ``repr``,
    and ``.to()`` moves the parameters once. Between calls nothing changes, so threads may share it.
    """

    def __init__(self, owner: Recurrent) -> None:
        cell = owner.cell_type
        self.names = list(owner._flat_weight_names)
        self.layer = cell.torch_layer(
            owner.input_size,
            owner.hidden_size,
            num_layers=owner.num_layers,
            bias=owner.bias,
            batch_first=True,
            bidirectional=owner.bidirectional,
            device="meta",
            **cell.fused_options(owner.nonlinearity),
        )
        self.held: list[Tensor] = []  # the parameters the torch layer holds, in the order of names
        self._hold(owner)

    def __call__(self, owner: Recurrent, input: Tensor | PackedSequence, hx):
        """``owner``'s layer on ``input``: torch's ``(output, hidden)``, dropout and mode as ``owner``'s."""
        layer = self.layer
        if layer.training != owner.training or layer.dropout != owner.dropout:  # a module's setattr is slow
            layer.training, layer.dropout = owner.training, owner.dropout
        if self._hold(owner):
            return layer(input, hx)
        # weights computed on the fly (a parametrisation, or torch.func.functional_call on the Recurrent)
        # are plain tensors, which a module holds only for the length of one functional call
        weights = {name: getattr(owner, name) for name in self.names}
        return torch.func.functional_call(layer, weights, (input, hx))

    def flatten(self, owner: Recurrent) -> None:
        if self._hold(owner):
            self.layer.flatten_parameters()

    def _hold(self, owner: Recurrent) -> bool:
        """Make ``owner``'s parameters the torch layer's (once: after that they already are, unless a
        loaded state dict replaced them); ``False`` if one of its weights is no ``nn.Parameter``."""
        weights = [getattr(owner, name) for name in self.names]
        if len(weights) == len(self.held) and all(map(operator.is_, weights, self.held)):
            return True
        if not all(isinstance(weight, nn.Parameter) for weight in weights):
            return False
        for name, weight in zip(self.names, weights, strict=True):
            setattr(self.layer, name, weight)
        self.held = weights
        return True


def _where(mask: Tensor, new: State, old: State) -> State:
    """Take ``new`` where ``mask`` is true, ``old`` elsewhere; works on tensors and LSTM states."""
    if isinstance(new, LSTMState) and isinstance(old, LSTMState):
        return LSTMState(torch.where(mask, new.h, old.h), torch.where(mask, new.c, old.c))
    assert isinstance(new, Tensor) and isinstance(old, Tensor)
    return torch.where(mask, new, old)


def _parts(state: State) -> tuple[Tensor, ...]:
    """The tensors of a state: ``(h, c)`` for the LSTM, ``(state,)`` otherwise."""
    return tuple(state) if isinstance(state, LSTMState) else (state,)


def _output(state: State) -> Tensor:
    """What a cell outputs from its state: :math:`h` of the LSTM's :math:`(h, c)`, the state otherwise."""
    return state.h if isinstance(state, LSTMState) else state
