r"""The pyramidal bidirectional RNN of Listen, Attend and Spell (Chan et al., 2016).

A bottom BiRNN reads the frames; each of the ``num_pyramid`` layers above it reads *pairs* of
neighbouring outputs of the layer below, joined,

.. math::
    h^{j}_{i} = \mathrm{BiRNN}\big(h^{j}_{i-1},\ [\,h^{j-1}_{2i} ;\ h^{j-1}_{2i+1}\,]\big),

so every pyramidal layer halves the sequence and the attention above it has :math:`2^{L}` times fewer
steps to look at (and the RNNs above the bottom do proportionally less work).

Odd lengths are handled per sequence, by ``odd``:

- ``"pad"`` (default): a sequence of odd length ``n`` gets one zero frame after its last one, so its
  last pair is :math:`[h_{n-1}; 0]` and its new length is :math:`\lceil n/2 \rceil`. Nothing is lost.
- ``"drop"``: its last frame is dropped; the new length is :math:`\lfloor n/2 \rfloor` (at least 1: a
  one-frame sequence keeps its frame, paired with zeros).

The lengths returned are exact, and because every RNN here runs on packed sequences and the frames
past a sequence's end are zeros, a padded batch gives each sequence exactly what it gets alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.nn.recurrent import Recurrent

ODD = ("pad", "drop")


def halve_lengths(lengths: Tensor, odd: str = "pad") -> Tensor:
    """The lengths after one pyramidal layer."""
    if odd == "pad":
        return (lengths + 1) // 2
    return torch.clamp(lengths // 2, min=1)


def pair_frames(x: Tensor, lengths: Tensor, odd: str = "pad") -> tuple[Tensor, Tensor]:
    """``(N, T, D)`` -> ``(N, ceil(T/2), 2D)``: frames 2i and 2i+1 joined; frames past the new lengths
    are zeros."""
    n, t, d = x.shape
    mask = torch.arange(t, device=x.device)[None, :] < lengths.to(x.device)[:, None]
    if odd == "drop":  # a sequence of odd length (> 1) loses its last frame
        keep = torch.where((lengths > 1) & (lengths % 2 == 1), lengths - 1, lengths)
        mask = torch.arange(t, device=x.device)[None, :] < keep.to(x.device)[:, None]
    x = x * mask[..., None].to(x.dtype)
    if t % 2:
        x = F.pad(x, (0, 0, 0, 1))
    return x.reshape(n, (t + 1) // 2, 2 * d), halve_lengths(lengths, odd)


class Pyramid(nn.Module):
    r"""Listen, Attend and Spell's listener: a bottom BiRNN and ``num_pyramid`` pyramidal BiRNN layers.

    Args:
        input_size: features per frame :math:`F` (40 log-mel bands, say).
        hidden_size: units per direction :math:`H` of every layer.
        num_pyramid: pyramidal layers :math:`L` (default 3: the sequence gets 8 times shorter).
        join: ``False`` builds the same stack without joining pairs: every upper layer reads the
            layer below frame by frame (reduction 1), the listener to compare the pyramid against.
        cell: ``lstm``, ``gru`` or ``rnn``.
        bottom_layers: BiRNN layers before the first pyramidal one.
        odd: ``pad`` or ``drop``: what a pyramidal layer does with a sequence of odd length.
        dropout: between layers.

    Inputs: ``x`` ``(N, T, F)``, ``lengths`` ``(N,)`` int64 (default: all ``T``).

    Outputs: ``(out, lengths)``: ``out`` ``(N, T', 2H)`` with :math:`T' = \lceil T / 2^{L} \rceil`
    (``pad``); ``lengths`` the exact length of each sequence's output; steps past it are zeros.

    Examples:
        >>> listener = Pyramid(40, 64, num_pyramid=3)
        >>> out, lengths = listener(torch.randn(2, 101, 40), torch.tensor([101, 40]))
        >>> out.shape, lengths.tolist()
        (torch.Size([2, 13, 128]), [13, 5])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_pyramid: int = 3,
        *,
        cell: str = "lstm",
        bottom_layers: int = 1,
        odd: str = "pad",
        dropout: float = 0.0,
        join: bool = True,
    ) -> None:
        super().__init__()
        if odd not in ODD:
            raise ValueError(f"odd: expected 'pad' or 'drop', got {odd!r}")
        if num_pyramid < 0 or bottom_layers < 1:
            raise ValueError(f"num_pyramid >= 0 and bottom_layers >= 1, got {num_pyramid}, {bottom_layers}")
        self.odd, self.num_pyramid, self.hidden_size, self.join = odd, num_pyramid, hidden_size, join
        self.bottom = Recurrent(
            input_size, hidden_size, cell=cell, num_layers=bottom_layers, bidirectional=True, dropout=dropout
        )
        self.layers = nn.ModuleList(
            Recurrent((4 if join else 2) * hidden_size, hidden_size, cell=cell, bidirectional=True)
            for _ in range(num_pyramid)
        )
        self.dropout = nn.Dropout(dropout)

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size

    @property
    def reduction(self) -> int:
        """How many input frames one output step covers: :math:`2^{L}`."""
        return 2**self.num_pyramid if self.join else 1

    def output_lengths(self, lengths: Tensor) -> Tensor:
        for _ in range(self.num_pyramid if self.join else 0):
            lengths = halve_lengths(lengths, self.odd)
        return lengths

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
        lengths = lengths.cpu()
        out, _ = self.bottom(x, lengths=lengths)
        for layer in self.layers:
            if self.join:
                below, lengths = pair_frames(self.dropout(out), lengths, self.odd)
            else:
                below = self.dropout(out)
            out, _ = layer(below, lengths=lengths)
        return out, lengths
