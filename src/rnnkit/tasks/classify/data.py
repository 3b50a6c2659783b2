"""Reading the labelled tables (and holding out validation rows), the label order, and how texts
become token and bigram ids (:class:`TextInputs`) in padded batches (:class:`Encoded`)."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from rnnkit.data.buckets import pad
from rnnkit.data.table import TEXT_SPECIALS, Table, bigram_keys, read_table, tokenize
from rnnkit.data.vocab import TokenTable
from rnnkit.errors import DataError
from rnnkit.tasks.classify.config import ClassifierConfig, ClassifierDataConfig

log = logging.getLogger("rnnkit")


@dataclass
class Encoded:
    ids: list[list[int]]
    labels: list[int]
    bigrams: list[list[int]] | None = None

    def batch(self, rows: list[int]) -> tuple[Tensor, Tensor, Tensor | None]:
        """Padded (ids, lengths, bigrams) of the given rows."""
        ids, lengths = pad([self.ids[i] for i in rows])
        bigrams = pad([self.bigrams[i] for i in rows])[0] if self.bigrams is not None else None
        return ids, lengths, bigrams


@dataclass
class TextInputs:
    """How texts become what the classifier reads: token ids, and bigram ids when it reads bigrams."""

    vocab: TokenTable
    kind: str
    max_tokens: int
    bigrams: TokenTable | None = None
    truncate: str = "head"

    def tokens(self, text: str) -> list[str]:
        return cut(tokenize(text, self.kind), self.max_tokens, self.truncate) or [text.strip()[:1] or "?"]

    def encode(self, texts: list[str], labels: list[int] | None = None) -> Encoded:
        docs = [self.tokens(t) for t in texts]
        pairs = (
            None if self.bigrams is None else [self.bigrams.encode(bigram_keys(d, self.kind)) for d in docs]
        )
        return Encoded([self.vocab.encode(d) for d in docs], labels or [], pairs)


def cut(tokens: list[str], limit: int, how: str = "head") -> list[str]:
    """At most ``limit`` tokens: the first ones (head), the last (tail) or the first and last halves
    (both; the head gets the odd one)."""
    if len(tokens) <= limit:
        return tokens
    if how == "head":
        return tokens[:limit]
    if how == "tail":
        return tokens[len(tokens) - limit :]
    tail = limit // 2
    return tokens[: limit - tail] + tokens[len(tokens) - tail :]


def encode_rows(table: Table, inputs: TextInputs, labels: list[str], path: str) -> Encoded:
    index = {label: i for i, label in enumerate(labels)}
    for label in table.labels:
        if label not in index:
            raise DataError(f"{path}: label {label!r} was not seen in training (labels: {', '.join(labels)})")
    return inputs.encode(table.texts, [index[label] for label in table.labels])


def load_tables(config: ClassifierConfig) -> tuple[Table, Table]:
    d = config.data
    table = read_table(Path(d.train), d.text_column, d.label_column, encoding=d.encoding)
    if table.skipped_empty:
        log.warning("%s: skipped %d row(s) with an empty text", d.train, table.skipped_empty)
    if d.val:
        return table, read_table(Path(d.val), d.text_column, d.label_column, encoding=d.encoding)
    rng = random.Random(config.train.seed)
    order = list(range(len(table.texts)))
    rng.shuffle(order)
    cut = max(1, int(len(order) * d.val_fraction))
    held, kept = sorted(order[:cut]), sorted(order[cut:])
    pick = lambda rows: Table([table.texts[i] for i in rows], [table.labels[i] for i in rows])  # noqa: E731
    return pick(kept), pick(held)


def sort_labels(labels: set[str]) -> list[str]:
    """Numbers in numeric order (0, 1, 2, 10), other labels alphabetically."""
    return sorted(labels, key=lambda x: (0, float(x), x) if _is_number(x) else (1, 0.0, x))


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def bigram_vocab(inputs: TextInputs) -> int:
    return len(inputs.bigrams) if inputs.bigrams is not None else 0


def saved_inputs(saved: dict, data: ClassifierDataConfig) -> TextInputs:
    """The text inputs a checkpoint's config.json describes (a run from before bigrams has none)."""
    bigrams = TokenTable(saved["bigrams"], TEXT_SPECIALS) if saved.get("bigrams") else None
    vocab = TokenTable(saved["vocab"], TEXT_SPECIALS)
    return TextInputs(vocab, saved["tokens"], data.max_tokens, bigrams, data.truncate)
