"""Reading and splitting tagged sentences, encoding them to ids, and padding batches."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from rnnkit.data.buckets import pad, padded_width
from rnnkit.data.seqlabel import Sentences, read_sentences
from rnnkit.data.table import bigram_keys, token_key
from rnnkit.data.vocab import TokenTable
from rnnkit.errors import DataError
from rnnkit.tasks.tag.config import TaggerConfig


def chunk(sentences: Sentences, limit: int) -> Sentences:
    """Cut sentences longer than ``limit`` tokens into pieces (their tags stay with their tokens)."""
    tokens, tags = [], []
    for words, labels in zip(sentences.tokens, sentences.tags, strict=True):
        for start in range(0, len(words), limit):
            tokens.append(words[start : start + limit])
            tags.append(labels[start : start + limit])
    return Sentences(tokens, tags)


@dataclass
class Inputs:
    """What the tagger reads for a set of sentences: token ids and (optionally) bigram ids."""

    vocab: TokenTable
    kind: str
    bigrams: TokenTable | None = None

    def encode(self, words: list[str]) -> tuple[list[int], list[int] | None]:
        ids = self.vocab.encode([token_key(w, self.kind) for w in words])
        pairs = self.bigrams.encode(bigram_keys(words, self.kind)) if self.bigrams is not None else None
        return ids, pairs


@dataclass
class EncodedTags:
    ids: list[list[int]]
    tags: list[list[int]]
    bigrams: list[list[int]] | None = None

    def batch(self, rows: list[int]) -> tuple[Tensor, Tensor, Tensor | None]:
        """Padded (ids, lengths, bigrams) of the given rows, :func:`padded_width` wide (the bigrams,
        which join each token to both neighbours, one more)."""
        width = padded_width(max(len(self.ids[i]) for i in rows))
        ids, lengths = pad([self.ids[i] for i in rows], width)
        bigrams = pad([self.bigrams[i] for i in rows], width + 1)[0] if self.bigrams is not None else None
        return ids, lengths, bigrams

    def tag_batch(self, rows: list[int], width: int) -> Tensor:
        return pad([self.tags[i] for i in rows], width)[0]


def encode(sentences: Sentences, inputs: Inputs, tag_index: dict[str, int], path: str) -> EncodedTags:
    ids: list[list[int]] = []
    tags: list[list[int]] = []
    bigrams: list[list[int]] = []
    for words, labels in zip(sentences.tokens, sentences.tags, strict=True):
        unknown = [t for t in labels if t not in tag_index]
        if unknown:
            raise DataError(
                f"{path}: tag {unknown[0]!r} was not seen in training (tags: {', '.join(tag_index)})"
            )
        row, pairs = inputs.encode(words)
        ids.append(row)
        if pairs is not None:
            bigrams.append(pairs)
        tags.append([tag_index[t] for t in labels])
    return EncodedTags(ids, tags, bigrams if inputs.bigrams is not None else None)


def sort_tags(tags: set[str]) -> list[str]:
    """O first, then by entity type and position (B before I/M/E), so the list reads well."""
    order = {"O": 0, "B": 1, "M": 2, "I": 2, "E": 3, "S": 4}

    def key(tag: str):
        head, _, kind = tag.partition("-")
        return (tag != "O", kind, order.get(head, 9), tag)

    return sorted(tags, key=key)


def load_sentences(config: TaggerConfig) -> tuple[Sentences, Sentences]:
    d = config.data
    train = read_sentences(Path(d.train), d.format, d.encoding)
    if d.val:
        return train, read_sentences(Path(d.val), d.format, d.encoding)
    order = list(range(len(train.tokens)))
    random.Random(config.train.seed).shuffle(order)
    cut = max(1, int(len(order) * d.val_fraction))
    pick = lambda rows: Sentences([train.tokens[i] for i in rows], [train.tags[i] for i in rows])  # noqa: E731
    return pick(sorted(order[cut:])), pick(sorted(order[:cut]))
