"""Scoring a token stream: total nats per token, with the state carried as in training."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rnnkit.data.batching import StreamBatcher


def score_tokens(
    model: nn.Module, tokens: np.ndarray, max_streams: int = 32, seq_len: int = 256
) -> tuple[float, int]:
    """Total nats of predicting ``tokens[1:]`` from what precedes each one, and how many were predicted.

    The text is cut into at most ``max_streams`` contiguous rows read in parallel with the state carried
    along each row (each row starts from a zero state), as training does.
    """
    device = next(model.parameters()).device
    streams = max(1, min(max_streams, (len(tokens) - 1) // (4 * seq_len)))
    batcher = StreamBatcher(tokens, streams, seq_len)
    total, count, state = 0.0, 0, None
    for x, y in batcher:
        logits, state = model(x.to(device), state)
        total += float(
            F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), y.to(device).reshape(-1), reduction="sum"
            )
        )
        count += y.numel()
    # the rows leave out up to ``streams - 1`` tokens at the end; score them in one short pass
    covered = streams * batcher.row_len
    if covered + 1 < len(tokens):
        rest = torch.from_numpy(np.asarray(tokens[covered:], dtype=np.int64))[None]  # (1, R)
        logits, _ = model(rest[:, :-1].to(device))
        total += float(F.cross_entropy(logits.float()[0], rest[0, 1:].to(device), reduction="sum"))
        count += rest.shape[1] - 1
    return total, count
