"""Batches of variable-length sequences: length buckets and padding, shared by the sequence tasks."""

from __future__ import annotations

import random

import torch
from torch import Tensor

WIDTH_STEP = 8
"""Padded batches are this many steps wide, or a multiple: see :func:`padded_width`."""


def padded_width(longest: int, step: int = WIDTH_STEP) -> int:
    """The width to pad a batch whose longest sequence is ``longest`` to: the next multiple of ``step``.

    A kernel sees as many distinct shapes as there are widths, and under bf16 on CPU each new shape
    builds and keeps a oneDNN primitive; a tagger epoch padded to its longest sentence sent about 100
    widths, rounded up to a multiple of 8 it sends at most ``max_tokens / 8`` (tests/test_tag.py).
    Extra padding changes no result: every model reads ``lengths``.
    """
    return -(-longest // step) * step


def pad(batch: list[list[int]], width: int | None = None) -> tuple[Tensor, Tensor]:
    """``(N, W)`` ids, zero-padded to ``width`` (at least the longest), and the ``(N,)`` lengths."""
    lengths = torch.tensor([len(x) for x in batch], dtype=torch.long)
    out = torch.zeros(len(batch), max(int(lengths.max()), width or 0), dtype=torch.long)
    for row, seq in enumerate(batch):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out, lengths


def bucket_batches(lengths: list[int], batch_size: int, seed: int, pool_batches: int = 50) -> list[list[int]]:
    """One epoch's batches of row indices: shuffled, sorted by length within pools, batches shuffled.

    Deterministic for a ``seed`` (the trainer passes seed + epoch), so a resumed run sees the same order.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    size = batch_size * pool_batches
    for start in range(0, len(order), size):
        pool = sorted(order[start : start + size], key=lambda i: lengths[i])
        batches += [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
    rng.shuffle(batches)
    return batches


class BucketStream:
    """Endless length-bucketed batches of row indices, epoch after epoch, with a resumable position.

    Epoch ``e`` is ``bucket_batches(lengths, batch_size, seed + e)``; ``state()``/``load_state()`` are
    the trainer's ``data_state``/``load_data_state``.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, min_rows: int = 1) -> None:
        """``min_rows``: an epoch's short last batch is dropped when it holds fewer rows (under DDP, the
        number of ranks: each needs one)."""
        self.lengths, self.batch_size, self.seed, self.min_rows = lengths, batch_size, seed, min_rows
        self.epoch, self.index = 0, 0
        self._batches = self._epoch_batches()

    def _epoch_batches(self) -> list[list[int]]:
        batches = bucket_batches(self.lengths, self.batch_size, self.seed + self.epoch)
        return [b for b in batches if len(b) >= self.min_rows]

    def next_rows(self) -> list[int]:
        if self.index >= len(self._batches):
            self.epoch += 1
            self.index = 0
            self._batches = self._epoch_batches()
        rows = self._batches[self.index]
        self.index += 1
        return rows

    def state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._batches = self._epoch_batches()
