"""Greedy and batched beam search over any step function: the one decoder of the char-RNN, the
captioner and the speech recogniser.

A model is decoded through ``step(tokens, state) -> (logits, state)``: ``tokens`` ``(R,)`` holds the
last token of each of R rows, ``logits`` ``(R, V)`` scores the next one (raw logits or
log-probabilities: the search normalises them with ``log_softmax`` after any mask, so a masked token's
probability goes to the others). A row's ``state`` is anything :func:`take` (or the ``select`` given)
can index by row: a tensor, ``None``, or tuples of them.

Beam layout: ``B`` items with ``K`` beams each are one batch of ``R = B * K`` rows, item ``i``'s beam
``j`` at row ``i * K + j``; every position is one ``step`` call. Anything a ``step`` closure holds per
item (a picture's vector, an utterance's encoder outputs) must be repeated the same way
(``repeat_interleave(K, 0)``).

The search runs at most ``max_len`` steps. With an ``end_id`` a hypothesis ends when it takes it (the
end token is not part of its tokens); without one (the char-RNN) every hypothesis runs to ``max_len``.
Hypotheses are ranked by ``log P / length ** alpha`` where the length counts the end token (``alpha``
0: the plain sum; 1: the mean log-probability per token, as Wu et al. 2016 and most captioners do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

Step = Callable[[Tensor, Any], tuple[Tensor, Any]]
"""``step(tokens (R,), state) -> (logits (R, V), state)``."""

Allowed = Callable[[int, Tensor], Tensor | None]
"""``allowed(position, prefix (R, position)) -> (R, V) or (V,) bool`` (``True``: may come next), or
``None`` for no constraint at this position. ``prefix`` holds each row's tokens so far."""


def take(state: Any, index: Tensor, dim: int = 1) -> Any:
    """Rows ``index`` of a state along ``dim`` (1: the ``(layers, N, H)`` states of
    :class:`rnnkit.nn.Recurrent`), through tuples and named tuples; ``None`` stays ``None``."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.index_select(dim, index.to(state.device))
    if isinstance(state, tuple):
        parts = [take(part, index, dim) for part in state]
        return type(state)(*parts) if hasattr(state, "_fields") else tuple(parts)
    if isinstance(state, list):
        return [take(part, index, dim) for part in state]
    raise TypeError(f"take: cannot select rows of a {type(state).__name__}")


def take_rows(state: Any, index: Tensor) -> Any:
    """:func:`take` along dim 0: states whose first dim is the batch (an attention decoder's)."""
    return take(state, index, dim=0)


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]
    """The tokens after the start token, the end token left out."""
    score: float
    """``log P / length ** alpha`` (the length counts the end token when there is one)."""


def _mask(logits: Tensor, allowed: Allowed | None, position: int, prefix: Tensor) -> Tensor:
    if allowed is None:
        return logits
    ok = allowed(position, prefix)
    if ok is None:
        return logits
    return logits.masked_fill(~ok.to(logits.device), float("-inf"))


@torch.no_grad()
def greedy(
    step: Step,
    start: Tensor,
    state: Any = None,
    *,
    max_len: int,
    end_id: int | None = None,
    allowed: Allowed | None = None,
) -> list[list[int]]:
    """The most likely token at every step, for each row of ``start`` ``(B,)``: at most ``max_len``
    tokens a row, cut before its first ``end_id``; stops once every row has ended."""
    tokens = start
    history = start.new_empty(start.shape[0], 0)  # (B, t)
    done = torch.zeros_like(start, dtype=torch.bool)
    for position in range(max_len):
        logits, state = step(tokens, state)
        tokens = _mask(logits, allowed, position, history).argmax(-1)
        history = torch.cat([history, tokens[:, None]], dim=1)
        if end_id is not None:
            done |= tokens == end_id
            if bool(done.all()):
                break
    rows = history.tolist()
    if end_id is None:
        return rows
    return [row[: row.index(end_id)] if end_id in row else row for row in rows]


@torch.no_grad()
def beam_search(
    step: Step,
    start: Tensor,
    state: Any = None,
    *,
    beam_size: int,
    max_len: int,
    end_id: int | None = None,
    alpha: float = 1.0,
    select: Callable[[Any, Tensor], Any] = take,
    allowed: Allowed | None = None,
) -> list[Hypothesis]:
    """The best hypothesis for each row of ``start`` ``(B,)`` (its state: ``state``, B rows) by beam
    search with ``beam_size`` beams, all ``B * beam_size`` hypotheses one batch of ``step``.

    Each item keeps the ``K`` best continuations of its live hypotheses (one empty hypothesis to start
    from; the others scored -inf until there are candidates to fill them). A hypothesis that takes
    ``end_id`` leaves the beam, its slot empty for that step; an item stops collecting once ``K`` have
    ended or none is left alive, and the search stops when every item has. When none ended within
    ``max_len`` (or there is no ``end_id``), the live hypotheses compete by the same measure.
    ``select(state, index)`` reorders the state's rows to follow the surviving beams.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size: expected 1 or more, got {beam_size}")
    n, k, device = start.shape[0], beam_size, start.device
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    tokens = torch.empty(n, k, 0, dtype=torch.long, device=device)  # (B, K, t)
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    done = [False] * n
    rows = torch.arange(n, device=device)[:, None]  # (B, 1)
    state = select(state, torch.arange(n, device=device).repeat_interleave(k))  # (B*K) rows
    prev = start.repeat_interleave(k)  # (B*K,)
    for position in range(max_len):
        logits, state = step(prev, state)
        logits = _mask(logits, allowed, position, tokens.view(n * k, position))
        logp = torch.log_softmax(logits.float(), dim=-1).view(n, k, -1)  # (B, K, V)
        vocab = logp.shape[-1]
        total = (scores[:, :, None] + logp).view(n, -1)  # (B, K*V)
        best, flat = total.topk(k, dim=-1)  # (B, K)
        parent, word = flat // vocab, flat % vocab
        tokens = torch.cat([tokens[rows, parent], word[:, :, None]], dim=-1)
        if end_id is not None:
            ended = (word == end_id) & torch.isfinite(best)
            for i, j in ended.nonzero().tolist():
                if not done[i]:
                    finished[i].append(
                        Hypothesis(tokens[i, j, :-1].tolist(), float(best[i, j]) / (position + 1) ** alpha)
                    )
            best = best.masked_fill(ended, float("-inf"))
            alive = torch.isfinite(best).any(1).tolist()
            done = [d or len(f) >= k or not a for d, f, a in zip(done, finished, alive, strict=True)]
        scores = best
        if all(done):
            break
        state = select(state, (rows * k + parent).reshape(-1))
        prev = word.reshape(-1)
    out = []
    length = max(1, tokens.shape[-1])
    for i in range(n):
        candidates = finished[i] or [
            Hypothesis(tokens[i, j].tolist(), s / length**alpha)
            for j, s in enumerate(scores[i].tolist())
            if s != float("-inf")
        ]
        out.append(max(candidates, key=lambda h: h.score))
    return out
