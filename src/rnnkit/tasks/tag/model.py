"""The tagger: embeddings (+ bigrams) -> (bi)RNN -> per-step tag scores -> CRF or softmax."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.nn.crf import CRF
from rnnkit.nn.encoder import TokenEncoder
from rnnkit.tasks.tag.config import TaggerModelConfig


class Tagger(TokenEncoder):
    """Embedding (+ bigram embeddings) -> (bi)RNN -> per-step tag scores -> CRF (or softmax).

    ``forward(ids, lengths, tags, bigrams)`` is the summed loss of the batch; ``decode(ids, lengths,
    bigrams)`` the tags. ``ids`` is (N, T); ``bigrams`` (N, T + 1) holds each sentence's n + 1 bigram ids
    (boundary, c1), (c1, c2), ..., (cn, boundary), so step t reads bigrams t and t + 1. It is required
    when the model was made with ``bigram_vocab > 0``.
    """

    def __init__(
        self, vocab_size: int, num_tags: int, config: TaggerModelConfig, bigram_vocab: int = 0
    ) -> None:
        m = config
        super().__init__(
            vocab_size, m.embedding_size, m.hidden_size, cell=m.cell, num_layers=m.num_layers,
            bidirectional=m.bidirectional, dropout=m.dropout, bigram_vocab=bigram_vocab,
            bigram_size=m.bigram_size,
        )  # fmt: skip
        self.config = config
        self.head = nn.Linear(self.rnn.output_size, num_tags)
        self.crf = CRF(num_tags) if config.crf else None

    def emissions(self, ids: Tensor, lengths: Tensor, bigrams: Tensor | None = None) -> Tensor:
        out, _ = self.encode(ids, lengths, bigrams, "tagger")
        return self.head(self.dropout(out)).float()  # (N, T, K)

    def forward(self, ids: Tensor, lengths: Tensor, tags: Tensor, bigrams: Tensor | None = None) -> Tensor:
        """The summed negative log-likelihood of the batch's tags (per sentence with a CRF)."""
        return self.loss_of(self.emissions(ids, lengths, bigrams), lengths, tags)

    def loss_of(self, scores: Tensor, lengths: Tensor, tags: Tensor) -> Tensor:
        if self.crf is not None:
            return self.crf(scores, tags, lengths).sum()
        mask = torch.arange(scores.shape[1], device=scores.device)[None] < lengths.to(scores.device)[:, None]
        return F.cross_entropy(scores[mask], tags[mask], reduction="sum")

    @torch.no_grad()
    def decode(self, ids: Tensor, lengths: Tensor, bigrams: Tensor | None = None) -> list[list[int]]:
        return self.decode_scores(self.emissions(ids, lengths, bigrams), lengths)

    def decode_scores(self, scores: Tensor, lengths: Tensor) -> list[list[int]]:
        if self.crf is not None:
            return self.crf.decode(scores, lengths)
        best = scores.argmax(-1).tolist()
        return [row[:n] for row, n in zip(best, lengths.tolist(), strict=True)]
