"""The token encoder the classifier and the tagger share: embedding (+ the two neighbouring bigrams'
embeddings) -> dropout -> (bi)RNN over each sequence's own length."""

from __future__ import annotations

from torch import Tensor, nn

from rnnkit.nn.bigrams import embed_with_bigrams
from rnnkit.nn.recurrent import Recurrent


class TokenEncoder(nn.Module):
    """A base class: a model derives from it and adds its head, so that its parameters keep the names
    ``embedding.*``, ``bigram.*`` and ``rnn.*``.

    ``bigram_vocab > 0`` and ``bigram_size > 0`` add the bigram table; ``dropout`` applies to the
    embeddings and between the RNN's layers (and is kept as ``self.dropout`` for the head's side).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        *,
        cell: str,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
        bigram_vocab: int = 0,
        bigram_size: int = 0,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=0)
        width = bigram_size if bigram_vocab else 0
        self.bigram = nn.Embedding(bigram_vocab, width, padding_idx=0) if width else None
        self.rnn = Recurrent(
            embedding_size + 2 * width,
            hidden_size,
            cell=cell,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
        )
        self.dropout = nn.Dropout(dropout)

    def encode(self, ids: Tensor, lengths: Tensor, bigrams: Tensor | None, what: str):
        """``(outputs (N, T, D*H), final state)`` of the RNN over the embedded ``ids`` ``(N, T)``
        (``bigrams`` ``(N, T + 1)`` when the model reads them; ``what`` names it in that error)."""
        x = self.dropout(embed_with_bigrams(self.embedding, self.bigram, ids, bigrams, what))
        return self.rnn(x, lengths=lengths)
