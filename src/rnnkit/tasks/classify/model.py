"""The classifier network: embedding (+ bigrams) -> (bi)RNN -> pooled representation -> class logits."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.nn import LSTMState
from rnnkit.nn.encoder import TokenEncoder
from rnnkit.tasks.classify.config import ClassifierModelConfig


class SequenceClassifier(TokenEncoder):
    """Embedding (+ bigram embeddings) -> (bi)RNN -> pooled representation -> linear -> class logits.

    Inputs: ``ids`` ``(N, T)`` (0 is padding), ``lengths`` ``(N,)``, and with ``bigram_vocab > 0`` the
    ``(N, T + 1)`` bigram ids of :func:`rnnkit.data.table.bigram_keys`. Output: logits ``(N, C)``.
    """

    def __init__(
        self, vocab_size: int, num_labels: int, config: ClassifierModelConfig, bigram_vocab: int = 0
    ) -> None:
        m = config
        super().__init__(
            vocab_size, m.embedding_size, m.hidden_size, cell=m.cell, num_layers=m.num_layers,
            bidirectional=m.bidirectional, dropout=m.dropout, bigram_vocab=bigram_vocab,
            bigram_size=m.bigram_size,
        )  # fmt: skip
        self.config = config
        self.head = nn.Linear(self.rnn.output_size * (3 if config.pool == "concat" else 1), num_labels)

    def represent(self, ids: Tensor, lengths: Tensor, bigrams: Tensor | None = None) -> Tensor:
        """The pooled representation ``(N, D*H)`` (``(N, 3*D*H)`` for concat)."""
        out, state = self.encode(ids, lengths, bigrams, "classifier")  # out (N, T, D*H), zero at padding
        pool, parts = self.config.pool, []
        if pool in ("last", "concat"):
            h = state.h if isinstance(state, LSTMState) else state  # (L*D, N, H)
            top = h[-self.rnn.num_directions :]  # the last layer: forward at T_b, backward at step 1
            parts.append(torch.cat(list(top), dim=-1))
        if pool in ("mean", "concat"):
            parts.append(out.sum(1) / lengths.to(out.device, out.dtype)[:, None])
        if pool in ("max", "concat"):
            steps = torch.arange(ids.shape[1], device=ids.device)
            mask = (steps[None, :] < lengths.to(ids.device)[:, None])[..., None]
            parts.append(out.masked_fill(~mask, float("-inf")).amax(1))
        return torch.cat(parts, dim=-1)

    def forward(self, ids: Tensor, lengths: Tensor, bigrams: Tensor | None = None) -> Tensor:
        return self.head(self.dropout(self.represent(ids, lengths, bigrams)))
