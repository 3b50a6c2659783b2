"""Recurrent cells: one time step of a vanilla RNN, an LSTM and a GRU.

Each cell is defined once. Its ``update`` maps the pre-activations (the input and hidden projections)
and the old state to the new state: the gate equations and the gate order (PyTorch's: ``i, f, g, o``
for the LSTM and ``r, z, n`` for the GRU) live there and nowhere else. Its ``step`` adds the hidden
projection to a precomputed input projection and calls ``update``. The user-facing ``nn.Module`` cells
below, the unrolled backend of :class:`rnnkit.nn.Recurrent` and :class:`rnnkit.nn.Stepper` (which
computes the projections its own faster way) all end in the same ``update``. One variant sits beside
it, in the same class: the LSTM's ``update_doubled_``, the same equations in place for inference loops
that own their state (the stepper's in-place form, :class:`rnnkit.nn.Stream`).

References:
    - J. Elman, "Finding structure in time", Cognitive Science 14, 1990 (the vanilla RNN).
    - S. Hochreiter and J. Schmidhuber, "Long short-term memory", Neural Computation 9, 1997;
      F. Gers et al., "Learning to forget", 2000 (the forget gate).
    - K. Cho et al., "Learning phrase representations using RNN encoder-decoder", arXiv:1406.1078.

Initialisation follows ``torch.nn.RNNBase``: every weight and bias is drawn from
:math:`\\mathcal{U}(-k, k)` with :math:`k = 1/\\sqrt{H}`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class LSTMState(NamedTuple):
    """Hidden state of an LSTM: ``h`` (the output) and ``c`` (the memory cell), same shape."""

    h: Tensor
    c: Tensor


#: A cell's state: a tensor for the RNN and GRU, an :class:`LSTMState` for the LSTM.
State = Tensor | LSTMState
#: ``step(gi, state, weight_hh, bias_hh) -> state``; ``gi`` is the input projection ``x W_ih^T + b_ih``.
StepFunction = Callable[[Tensor, State, Tensor, "Tensor | None"], State]


class CellBase(nn.Module):
    """Shared parameters, initialisation and validation of every cell.

    Subclasses differ only in ``num_chunks`` (how many gate blocks are stacked in each weight), in the
    ``torch.nn`` layer that fuses them, and in their gate equations (``update``, and the :meth:`step`
    that feeds it). Parameter names and shapes are those of ``torch.nn.RNNCell``/``LSTMCell``/
    ``GRUCell``: ``weight_ih`` ``(G*H, H_in)``, ``weight_hh`` ``(G*H, H)``, ``bias_ih`` and ``bias_hh``
    ``(G*H,)``, with ``G = num_chunks``.
    """

    num_chunks: ClassVar[int]
    #: The ``torch.nn`` layer that runs this cell over whole sequences in one fused kernel (cuDNN on
    #: NVIDIA GPUs, oneDNN or ATen on CPU); the fused backend runs it on :class:`Recurrent`'s parameters.
    torch_layer: ClassVar[Callable[..., nn.RNNBase]]

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        check_sizes(input_size, hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        gates = self.num_chunks * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gates))
            self.bias_hh = nn.Parameter(torch.empty(gates))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_uniform(self, self.hidden_size)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        return text

    @staticmethod
    def step(gi: Tensor, state: State, weight_hh: Tensor, bias_hh: Tensor | None) -> State:
        """Advance one step from the input projection ``gi = x W_ih^T + b_ih`` of shape ``(N, G*H)``."""
        raise NotImplementedError

    @classmethod
    def step_function(cls, nonlinearity: str = "tanh") -> StepFunction:
        """The step function; only the vanilla RNN has a choice of ``nonlinearity``."""
        return cls.step

    @classmethod
    def fused_options(cls, nonlinearity: str = "tanh") -> dict[str, str]:
        """Keyword arguments of :attr:`torch_layer` beyond its sizes; only the vanilla RNN has one."""
        return {}

    @classmethod
    def zero_state(cls, batch: int, hidden_size: int, like: Tensor) -> State:
        """A zero state for ``batch`` sequences on ``like``'s device and dtype."""
        return like.new_zeros(batch, hidden_size)

    def forward(self, input: Tensor, state: State | None = None) -> State:
        if input.dim() != 2:
            raise ValueError(f"input: expected a 2-D tensor (N, H_in), got shape {tuple(input.shape)}")
        if state is None:
            state = self.zero_state(input.shape[0], self.hidden_size, input)
        gi = F.linear(input, self.weight_ih, self.bias_ih)  # (N, G*H)
        step = self.step_function(getattr(self, "nonlinearity", "tanh"))
        return step(gi, state, self.weight_hh, self.bias_hh)


class RNNCell(CellBase):
    r"""The vanilla (Elman) RNN cell, exactly as the tutorial writes it.

    .. math::
        s_t = f(U x_t + W s_{t-1} + b)

    where :math:`U` is ``weight_ih``, :math:`W` is ``weight_hh``, :math:`b` is ``bias_ih + bias_hh``
    (PyTorch keeps two bias vectors; only their sum matters) and :math:`f` is ``tanh`` or ``relu``.
    The output layer :math:`o_t = \mathrm{softmax}(V s_t)` is not part of the cell: it belongs to the
    model that reads the states (see :mod:`rnnkit.reference` for the whole tutorial model).

    Args:
        input_size: :math:`H_{in}`, features of :math:`x_t`.
        hidden_size: :math:`H`, features of :math:`s_t`.
        bias: add ``bias_ih`` and ``bias_hh``. Default ``True``.
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.

    Inputs: ``input`` ``(N, H_in)``, ``state`` ``(N, H)`` or ``None`` (zeros).

    Outputs: the new state ``(N, H)``.

    Attributes:
        weight_ih: :math:`U`, shape ``(H, H_in)``.
        weight_hh: :math:`W`, shape ``(H, H)``.
        bias_ih, bias_hh: shape ``(H,)``.

    Examples:
        >>> cell = RNNCell(10, 20)
        >>> s = cell(torch.randn(3, 10))
        >>> s = cell(torch.randn(3, 10), s)
        >>> s.shape
        torch.Size([3, 20])
    """

    num_chunks = 1
    torch_layer = nn.RNN
    nonlinearity: str

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"

    @staticmethod
    def update(pre: Tensor, nonlinearity: str = "tanh") -> Tensor:
        """The new state :math:`s_t = f(p)` from the pre-activation :math:`p = U x_t + W s_{t-1} + b`,
        ``(N, H)``."""
        return torch.relu(pre) if nonlinearity == "relu" else torch.tanh(pre)

    @staticmethod
    def step(gi: Tensor, state: State, weight_hh: Tensor, bias_hh: Tensor | None) -> Tensor:
        h = cast(Tensor, state)  # the vanilla RNN's state is one tensor
        return RNNCell.update(gi + F.linear(h, weight_hh, bias_hh))

    @staticmethod
    def step_relu(gi: Tensor, state: State, weight_hh: Tensor, bias_hh: Tensor | None) -> Tensor:
        h = cast(Tensor, state)
        return RNNCell.update(gi + F.linear(h, weight_hh, bias_hh), "relu")

    @classmethod
    def step_function(cls, nonlinearity: str = "tanh") -> StepFunction:
        return cls.step_relu if nonlinearity == "relu" else cls.step

    @classmethod
    def fused_options(cls, nonlinearity: str = "tanh") -> dict[str, str]:
        return {"nonlinearity": nonlinearity}


class LSTMCell(CellBase):
    r"""The long short-term memory cell with a forget gate, PyTorch's gate order ``i, f, g, o``.

    .. math::
        \begin{aligned}
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t)
        \end{aligned}

    :math:`\sigma` is the logistic sigmoid and :math:`\odot` the elementwise product. ``weight_ih`` is
    :math:`[W_{ii}; W_{if}; W_{ig}; W_{io}]` stacked by rows, and likewise ``weight_hh`` and the biases.
    No peephole connections (as in PyTorch).

    Args:
        input_size: :math:`H_{in}`. hidden_size: :math:`H`. bias: default ``True``.

    Inputs: ``input`` ``(N, H_in)``, ``state`` an :class:`LSTMState` of two ``(N, H)`` or ``None``.

    Outputs: the new :class:`LSTMState` ``(h_t, c_t)``, each ``(N, H)``.

    Attributes:
        weight_ih: ``(4H, H_in)``; weight_hh: ``(4H, H)``; bias_ih, bias_hh: ``(4H,)``.

    Examples:
        >>> cell = LSTMCell(10, 20)
        >>> h, c = cell(torch.randn(3, 10))
        >>> h.shape, c.shape
        (torch.Size([3, 20]), torch.Size([3, 20]))
    """

    num_chunks = 4
    torch_layer = nn.LSTM

    @classmethod
    def zero_state(cls, batch: int, hidden_size: int, like: Tensor) -> LSTMState:
        zeros = like.new_zeros(batch, hidden_size)
        return LSTMState(zeros, zeros)

    @staticmethod
    def update(gates: Tensor, c: Tensor) -> LSTMState:
        """The new state :math:`(h_t, c_t)` from the pre-activations of all four gates, ``gates``
        ``(N, 4H)`` (the sum of both projections and both biases, blocks in the order i, f, g, o), and
        the old memory cell :math:`c_{t-1}` ``(N, H)``."""
        size = c.shape[-1]
        i_f = torch.sigmoid(gates[:, : 2 * size])  # i and f are adjacent: one call
        i, f = i_f[:, :size], i_f[:, size:]  # (slices: chunk() costs twice as much in a step's few µs)
        g = torch.tanh(gates[:, 2 * size : 3 * size])
        o = torch.sigmoid(gates[:, 3 * size :])
        # f * c + i * g; in place only on tensors made here that no backward reads
        c = (f * c).addcmul_(i, g)
        return LSTMState(o * torch.tanh(c), c)

    @staticmethod
    def double_g(weight: Tensor) -> Tensor:
        """A copy of ``weight`` ``(4H, ...)`` (a matrix, a bias or a table of pre-activations, blocks
        i, f, g, o) with the g block doubled: what :meth:`update_doubled_` takes its products from.
        Exact in every floating-point type (a power of two)."""
        size = weight.shape[0] // 4
        doubled = weight.clone()
        doubled[2 * size : 3 * size] *= 2
        return doubled

    @staticmethod
    def update_doubled_(gates: Tensor, c: Tensor, h_out: Tensor) -> None:
        r""":meth:`update` in place, for inference loops that own their state, from pre-activations
        whose g block is doubled (weights and biases made by :meth:`double_g`): then
        :math:`\tanh(g) = 2\sigma(2g) - 1`, so one sigmoid covers all four blocks, and
        :math:`c_t = f c_{t-1} + i (2\sigma(2g) - 1)`. The memory cell ``c`` ``(N, H)`` becomes
        :math:`c_t`, :math:`h_t` is written into ``h_out`` ``(N, H)`` (a view into a larger buffer is
        fine) and ``gates`` ``(N, 4H)`` is used up. Eight calls a layer where :meth:`update` makes a
        dozen; the same function to float rounding. Not for autograd (it writes what a backward reads)."""
        size = c.shape[-1]
        i, f, g2, o = gates.sigmoid_().view(-1, 4, size).unbind(1)  # g2 = sigmoid(2g)
        c.mul_(f).addcmul_(i, g2, value=2).sub_(i)  # f c + i (2 sigmoid(2g) - 1) = f c + i tanh(g)
        torch.mul(o, torch.tanh(c), out=h_out)

    @staticmethod
    def step(gi: Tensor, state: State, weight_hh: Tensor, bias_hh: Tensor | None) -> LSTMState:
        h, c = state
        return LSTMCell.update(gi + F.linear(h, weight_hh, bias_hh), c)  # gates (N, 4H)


class GRUCell(CellBase):
    r"""The gated recurrent unit, PyTorch's gate order ``r, z, n``.

    .. math::
        \begin{aligned}
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{aligned}

    Note:
        Cho et al. apply the reset gate before the matrix product, :math:`W_{hn}(r_t \odot h_{t-1})`.
        Like PyTorch and cuDNN we apply it after (:math:`r_t \odot (W_{hn} h_{t-1} + b_{hn})`), so that
        the hidden projection of all three gates is one matrix product and weights load into
        ``torch.nn.GRU`` unchanged.

    Args:
        input_size: :math:`H_{in}`. hidden_size: :math:`H`. bias: default ``True``.

    Inputs: ``input`` ``(N, H_in)``, ``state`` ``(N, H)`` or ``None``.

    Outputs: the new state ``(N, H)``.

    Attributes:
        weight_ih: ``(3H, H_in)``; weight_hh: ``(3H, H)``; bias_ih, bias_hh: ``(3H,)``.

    Examples:
        >>> cell = GRUCell(10, 20)
        >>> cell(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    num_chunks = 3
    torch_layer = nn.GRU

    @staticmethod
    def update(gi: Tensor, gh: Tensor, h: Tensor) -> Tensor:
        """The new state :math:`h_t` from the input projection ``gi`` :math:`= W_i x_t + b_i` and the
        hidden projection ``gh`` :math:`= W_h h_{t-1} + b_h`, each ``(N, 3H)`` (blocks r, z, n; they
        stay apart because the reset gate scales only the hidden part of n), and :math:`h_{t-1}`."""
        size = h.shape[-1]
        # in place only on tensors made here that no backward reads
        rz = (gi[:, : 2 * size] + gh[:, : 2 * size]).sigmoid_()
        r, z = rz[:, :size], rz[:, size:]  # each (N, H)
        n = torch.addcmul(gi[:, 2 * size :], r, gh[:, 2 * size :]).tanh_()
        # not torch.lerp: under autocast n is bf16 while h stays fp32, which lerp refuses
        return n + z * (h - n)  # = (1 - z) * n + z * h

    @staticmethod
    def step(gi: Tensor, state: State, weight_hh: Tensor, bias_hh: Tensor | None) -> Tensor:
        h = cast(Tensor, state)  # the GRU's state is one tensor
        return GRUCell.update(gi, F.linear(h, weight_hh, bias_hh), h)  # gh (N, 3H)


#: The cell registry: ``Recurrent(cell=name)`` looks names up here.
CELLS: dict[str, type[CellBase]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def cell_class(name: str) -> type[CellBase]:
    """The cell class registered as ``name``; ``ValueError`` naming the argument otherwise."""
    try:
        return CELLS[name]
    except (KeyError, TypeError):
        raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {name!r}") from None


def reset_uniform(module: nn.Module, hidden_size: int) -> None:
    """PyTorch's RNN initialisation: every parameter from U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    for weight in module.parameters():
        nn.init.uniform_(weight, -bound, bound)


def check_sizes(input_size: int, hidden_size: int) -> None:
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
