"""Batches for truncated BPTT over one long token stream.

The stream of ``N`` tokens is cut into ``B`` contiguous rows of ``S = (N - 1) // B`` steps, and each
batch is the next ``seq_len`` columns of every row, so row ``b`` of batch ``i + 1`` continues row ``b``
of batch ``i`` and the hidden state can be carried across batches (char-rnn's layout)::

    tokens  t0 t1 t2 ... t(S) t(S+1) ... t(2S) ...
    row 0   [t0 ........ tS]                       batch 0: columns 0..T, batch 1: T..2T, ...
    row 1                [tS ........ t2S]
    row 2                             [t2S ...

Rows share their boundary token (the last target of row ``b`` is the first input of row ``b + 1``), so
in one epoch every token from ``t1`` to ``tBS`` is a target exactly once and every token from ``t0`` to
``t(BS-1)`` an input exactly once. The last batch of an epoch is shorter when ``S`` is not a multiple of
``seq_len``. Under DDP, rank ``r`` of ``W`` takes the rows ``r*B .. (r+1)*B - 1`` of ``W*B`` rows.
"""

from __future__ import annotations

import numpy as np
import torch


class StreamBatcher:
    """Cuts a token array (often a memmap) into TBPTT batches ``(x, y)`` of shape ``(B, <=T)``."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, rank: int = 0, world_size: int = 1):
        if batch_size < 1 or seq_len < 1:
            raise ValueError("batch_size, seq_len: expected positive integers")
        self.tokens = tokens
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.rank = rank
        self.world_size = world_size
        rows = batch_size * world_size
        self.row_len = (len(tokens) - 1) // rows if len(tokens) > 1 else 0
        self.starts = [(rank * batch_size + b) * self.row_len for b in range(batch_size)]

    @property
    def batches_per_epoch(self) -> int:
        return -(-self.row_len // self.seq_len)  # ceil

    @property
    def tokens_per_epoch(self) -> int:
        return self.row_len * self.batch_size

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` of an epoch: inputs and targets, ``(B, T_i)`` int64 each."""
        begin = index * self.seq_len
        steps = min(self.seq_len, self.row_len - begin)
        if not 0 <= index < self.batches_per_epoch:
            raise IndexError(f"batch {index} of an epoch of {self.batches_per_epoch}")
        rows = np.stack([self.tokens[s + begin : s + begin + steps + 1] for s in self.starts])  # (B, T+1)
        window = torch.from_numpy(rows.astype(np.int64))
        return window[:, :-1], window[:, 1:]

    def __iter__(self):
        for index in range(self.batches_per_epoch):
            yield self.batch(index)
