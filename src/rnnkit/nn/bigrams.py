"""Token embeddings joined with the embeddings of each token's two neighbouring bigrams."""

from __future__ import annotations

from torch import Tensor, cat, nn


def embed_with_bigrams(
    embedding: nn.Embedding, bigram: nn.Embedding | None, ids: Tensor, bigrams: Tensor | None, what: str
) -> Tensor:
    r"""``(N, T, E [+ 2B])``: :math:`[E(c_t); E_b(c_{t-1}c_t); E_b(c_t c_{t+1})]` at each step.

    ``ids`` ``(N, T)``; ``bigrams`` ``(N, T + 1)`` holds each sequence's n + 1 bigram ids (edge, c1),
    (c1, c2), ..., (cn, edge) (see :func:`rnnkit.data.table.bigram_keys`), so step t reads bigrams t
    and t + 1. Without a ``bigram`` table the token embeddings alone; ``what`` names the model in the
    error when a model with one is given no bigram ids.
    """
    x = embedding(ids)
    if bigram is None:
        return x
    if bigrams is None:
        raise ValueError(f"this {what} reads bigrams: pass the (N, T + 1) bigram ids")
    pairs = bigram(bigrams[:, : ids.shape[1] + 1])
    return cat([x, pairs[:, :-1], pairs[:, 1:]], dim=-1)
