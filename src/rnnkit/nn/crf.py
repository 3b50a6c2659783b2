r"""A linear-chain conditional random field over per-step scores: batched, masked, exact.

For emissions :math:`E \in \mathbb{R}^{T \times K}` (a BiRNN's scores of each tag at each step) and tags
:math:`y_1 .. y_T`, the CRF scores a whole tag sequence

.. math::
    s(y) = \pi_{y_1} + \sum_{t=1}^{T} E_{t, y_t} + \sum_{t=2}^{T} A_{y_{t-1}, y_t} + \omega_{y_T},
    \qquad p(y \mid x) = \frac{\exp s(y)}{\sum_{y'} \exp s(y')},

with learned transitions :math:`A` (``from -> to``), start scores :math:`\pi` and end scores
:math:`\omega`. The normaliser is computed by the forward algorithm in :math:`O(T K^2)`; the best
sequence by Viterbi. Sequences in a batch have their own lengths: steps past a sequence's length
change nothing (the tests compare both against brute-force enumeration).

Reference: J. Lafferty, A. McCallum, F. Pereira, "Conditional random fields", ICML 2001; Z. Huang,
W. Xu, K. Yu, "Bidirectional LSTM-CRF models for sequence tagging", arXiv:1508.01991.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CRF(nn.Module):
    """Transitions between ``num_tags`` tags, with start and end scores.

    Args:
        num_tags: :math:`K`.

    Attributes:
        transitions: ``(K, K)``, ``transitions[i, j]`` scores tag ``j`` right after tag ``i``.
        start, end: ``(K,)``.
    """

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags: expected a positive integer, got {num_tags}")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.start = nn.Parameter(torch.empty(num_tags))
        self.end = nn.Parameter(torch.empty(num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.transitions, self.start, self.end):
            nn.init.uniform_(p, -0.1, 0.1)

    @staticmethod
    def _mask(emissions: Tensor, lengths: Tensor) -> Tensor:
        steps = torch.arange(emissions.shape[1], device=emissions.device)
        return steps[None, :] < lengths.to(emissions.device)[:, None]  # (N, T)

    def score(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """:math:`s(y)` of the given ``tags`` ``(N, T)`` for each sequence: ``(N,)``."""
        n = emissions.shape[0]
        mask = self._mask(emissions, lengths).to(emissions.dtype)
        rows = torch.arange(n, device=emissions.device)
        emit = emissions.gather(2, tags[..., None]).squeeze(-1)  # (N, T)
        total = self.start[tags[:, 0]] + (emit * mask).sum(1)
        if emissions.shape[1] > 1:
            trans = self.transitions[tags[:, :-1], tags[:, 1:]]  # (N, T-1)
            total = total + (trans * mask[:, 1:]).sum(1)
        last = tags[rows, lengths.to(emissions.device) - 1]
        return total + self.end[last]

    def log_partition(self, emissions: Tensor, lengths: Tensor) -> Tensor:
        """:math:`\\log \\sum_{y} \\exp s(y)` for each sequence, by the forward algorithm: ``(N,)``."""
        mask = self._mask(emissions, lengths)
        alpha = self.start[None] + emissions[:, 0]  # (N, K)
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha[:, :, None] + self.transitions[None], dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t, None], step, alpha)
        return torch.logsumexp(alpha + self.end[None], dim=1)

    def forward(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """Negative log-likelihood of ``tags`` for each sequence: ``(N,)``.

        Inputs: ``emissions`` ``(N, T, K)``, ``tags`` ``(N, T)`` (any value past a length), ``lengths``
        ``(N,)`` with every length at least 1.
        """
        return self.log_partition(emissions, lengths) - self.score(emissions, tags, lengths)

    @torch.no_grad()
    def decode(self, emissions: Tensor, lengths: Tensor) -> list[list[int]]:
        """The highest-scoring tag sequence of each sequence (Viterbi), as lists of its own length."""
        mask = self._mask(emissions, lengths)
        best = self.start[None] + emissions[:, 0]  # (N, K)
        pointers = []
        for t in range(1, emissions.shape[1]):
            candidates = best[:, :, None] + self.transitions[None]  # (N, from, to)
            value, index = candidates.max(dim=1)
            step = value + emissions[:, t]
            pointers.append(
                torch.where(mask[:, t, None], index, torch.arange(self.num_tags, device=index.device))
            )
            best = torch.where(mask[:, t, None], step, best)
        last = (best + self.end[None]).argmax(dim=1)  # (N,)
        # walk back; past a sequence's length the pointers are the identity, so its last tag carries through
        path = [last]
        for back in reversed(pointers):
            last = back.gather(1, last[:, None]).squeeze(1)
            path.append(last)
        path.reverse()
        tags = torch.stack(path, dim=1).tolist()  # (N, T)
        return [row[:n] for row, n in zip(tags, lengths.tolist(), strict=True)]
