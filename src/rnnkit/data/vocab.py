"""Vocabularies, the one module: the char-RNN's character or byte streams (:class:`Vocabulary`) and
the token tables of the other tasks (:class:`TokenTable`), whose special tokens have named ids.

Stream encoding is vectorised: text becomes an array of code points (``utf-32``), and one lookup table
over all of Unicode maps code points to ids, so a character vocabulary encodes hundreds of MB/s.

A token table is stored as its token list (what each task writes into its checkpoint's config.json)
and its ids are positions in that list, so a saved table reads back with the same ids. How text
becomes tokens (caption words, a tagger's tokens, a transcript's characters) stays with each task.
"""

from __future__ import annotations

import codecs
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rnnkit.errors import DataError

UNK = "\ufffd"  # how the unknown token prints: U+FFFD REPLACEMENT CHARACTER
MAX_CODE_POINT = 0x110000
KINDS = ("char", "byte")

PAD_ID = 0
START_ID = 1
END_ID = 2
"""The named special ids of the sequence-to-sequence tables (caption words, speech characters):
``<pad>`` (also CTC's blank) 0, ``<start>`` 1, ``<end>`` 2. Decoders take them from here, never as bare
numbers."""


def code_points(text: str) -> np.ndarray:
    """The code points of ``text``: ``uint8`` for ASCII text (one byte a character), else ``uint32``."""
    if text.isascii():  # O(1) in CPython: the string already knows
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def count_chars(text: str, counts: np.ndarray | None = None) -> np.ndarray:
    """Add the character counts of ``text`` to ``counts`` (a ``(0x110000,)`` int64 array) and return it."""
    if counts is None:
        counts = np.zeros(MAX_CODE_POINT, dtype=np.int64)
    points = code_points(text)
    if points.size:
        hist = np.bincount(points, minlength=256)  # only as long as the largest code point needs
        counts[: hist.size] += hist
    return counts


@dataclass
class Vocabulary:
    """A mapping between tokens and ids.

    ``kind="char"``: ``tokens[i]`` is the character with id ``i``; id 0 is the unknown token when
    ``unk`` is true (characters outside the vocabulary encode to it and decode to U+FFFD).
    ``kind="byte"``: the 256 byte values, ids equal bytes; decoding is UTF-8 with replacement.
    """

    kind: str = "char"
    tokens: list[str] = field(default_factory=list)
    unk: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {list(KINDS)}, got {self.kind!r}")
        if self.kind == "byte":
            self.tokens = []
            self.unk = False
            return
        if len(set(self.tokens)) != len(self.tokens) or any(len(t) != 1 for t in self.tokens):
            raise ValueError("tokens: expected distinct single characters")
        self._index = {ch: i for i, ch in enumerate(self.tokens)}
        unk_id = 0 if self.unk else -1
        self._table = np.full(MAX_CODE_POINT, unk_id, dtype=np.int32)
        start = 1 if self.unk else 0
        for i, ch in enumerate(self.tokens[start:], start):
            self._table[ord(ch)] = i

    # ----------------------------------------------------------------------------------------------
    @classmethod
    def bytes(cls) -> Vocabulary:
        return cls(kind="byte")

    @classmethod
    def from_counts(cls, counts: np.ndarray, max_size: int | None = None) -> Vocabulary:
        """Characters by falling frequency (ties by code point), at most ``max_size`` ids with the unknown.

        The unknown token is always id 0, so a model can meet characters it never saw.
        """
        seen = np.flatnonzero(counts)
        seen = seen[seen != ord(UNK)]  # U+FFFD in the text is the unknown token itself
        order = seen[np.lexsort((seen, -counts[seen]))]
        if max_size is not None:
            order = order[: max(max_size - 1, 0)]
        return cls(kind="char", tokens=[UNK, *(chr(int(cp)) for cp in order)], unk=True)

    @classmethod
    def from_text(cls, text: str | Iterable[str], max_size: int | None = None) -> Vocabulary:
        counts = None
        for piece in [text] if isinstance(text, str) else text:
            counts = count_chars(piece, counts)
        if counts is None:
            counts = np.zeros(MAX_CODE_POINT, dtype=np.int64)
        return cls.from_counts(counts, max_size)

    # ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return 256 if self.kind == "byte" else len(self.tokens)

    @property
    def unk_id(self) -> int | None:
        return 0 if self.kind == "char" and self.unk else None

    @property
    def dtype(self) -> np.dtype:
        """The smallest unsigned dtype that holds every id (the token files' dtype)."""
        return np.dtype(np.uint16 if len(self) <= 1 << 16 else np.uint32)

    def encode(self, text: str) -> np.ndarray:
        """Ids of ``text`` in :attr:`dtype`; unknown characters map to the unknown id."""
        if self.kind == "byte":
            return np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8).astype(self.dtype)
        points = code_points(text)
        if points.dtype == np.uint8 and self.unk:  # ASCII: a 256-entry table already in the file dtype
            lut = self.__dict__.get("_ascii_lut")
            if lut is None:
                lut = self.__dict__["_ascii_lut"] = self._table[:256].astype(self.dtype)
            return lut[points]
        ids = self._table[points]
        if not self.unk and ids.size and ids.min() < 0:
            missing = sorted(set(self.missing(text)))
            raise ValueError(f"text: characters not in the vocabulary: {''.join(missing)!r}")
        return ids.astype(self.dtype)

    def missing(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that the vocabulary lacks, in order of appearance."""
        if self.kind == "byte":
            return []
        out: dict[str, None] = {}
        for ch in text:
            if ch not in self._index:
                out[ch] = None
        return list(out)

    def decode(self, ids: Iterable[int]) -> str:
        if self.kind == "byte":
            return bytes(int(i) for i in ids).decode("utf-8", "replace")
        tokens = self.tokens
        return "".join(tokens[int(i)] for i in ids)

    def decoder(self) -> StreamDecoder:
        """An incremental decoder for streaming output one id at a time."""
        return StreamDecoder(self)

    def id_of(self, token: str) -> int | None:
        """The id of a single character (``None`` if unknown); for bytes, only of a one-byte character."""
        if self.kind == "byte":
            raw = token.encode("utf-8")
            return raw[0] if len(raw) == 1 else None
        i = self._index.get(token)
        return None if i is None or (self.unk and i == 0) else i

    def to_dict(self) -> dict:
        return {"kind": self.kind, "tokens": "".join(self.tokens), "unk": self.unk}

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        return cls(kind=data["kind"], tokens=list(data.get("tokens", "")), unk=bool(data.get("unk", True)))


class StreamDecoder:
    """Turns ids into text as they come; for bytes, holds back an incomplete UTF-8 sequence."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self._bytes = codecs.getincrementaldecoder("utf-8")("replace") if vocab.kind == "byte" else None

    def __call__(self, token_id: int) -> str:
        if self._bytes is not None:
            return self._bytes.decode(bytes([int(token_id)]))
        return self.vocab.tokens[int(token_id)]

    def flush(self) -> str:
        return self._bytes.decode(b"", final=True) if self._bytes is not None else ""


# -------------------------------------------------------------------------------------------------
# token tables


@dataclass(frozen=True)
class Specials:
    """The special tokens that open a :class:`TokenTable`, always in the order pad, start, end, unknown;
    a table lacks those left ``None``. The order fixes the ids: the captioner's four are ``<pad>`` 0,
    ``<start>`` 1, ``<end>`` 2, ``<unk>`` 3; the speech recogniser's ``<pad>`` 0, ``<s>`` 1, ``</s>`` 2
    (no unknown: a character it cannot write is an error); the classifier's and tagger's ``<pad>`` 0,
    ``<unk>`` 1. The fields are the tokens as the table stores them."""

    pad: str | None = None
    start: str | None = None
    end: str | None = None
    unk: str | None = None

    @property
    def tokens(self) -> list[str]:
        """The specials present, in id order."""
        return [t for t in (self.pad, self.start, self.end, self.unk) if t is not None]

    def id_of(self, token: str | None) -> int | None:
        """The id of one of the specials (``None`` for a special the table lacks)."""
        return None if token is None else self.tokens.index(token)


ORDERS = ("count", "token")


class TokenTable:
    """Tokens and their ids: the :class:`Specials` first, then the tokens themselves.

    ``pad_id``, ``start_id``, ``end_id`` and ``unk_id`` name the specials' ids (``None`` for those the
    table lacks). ``sep`` joins decoded tokens (``" "`` for words, ``""`` for characters).

    Args:
        tokens: the whole list, specials included, as :attr:`tokens` gives it and a checkpoint stores it.
        specials: the specials it opens with; a list that does not open with them is a ``ValueError``.
    """

    def __init__(
        self, tokens: Sequence[str], specials: Specials, *, sep: str = "", max_length: int | None = None
    ) -> None:
        head = specials.tokens
        if not all(isinstance(t, str) for t in tokens):
            raise TypeError("tokens: expected a list of strings")
        opening = list(tokens[: len(head)])
        if opening != head:
            raise ValueError(f"tokens: expected the table to open with {head}, got {opening}")
        self.tokens = list(tokens)
        self.specials, self.sep, self._max_length = specials, sep, max_length
        # a token listed twice (a tagger's corpus may hold the word "<unk>") encodes to its last id
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id = specials.id_of(specials.pad)
        self.start_id = specials.id_of(specials.start)
        self.end_id = specials.id_of(specials.end)
        self.unk_id = specials.id_of(specials.unk)
        self.special_ids = list(range(len(head)))
        """The ids of every special: what a bag of words or a score leaves out."""
        self._silent = {i for i in (self.pad_id, self.start_id, self.end_id) if i is not None}

    @classmethod
    def build(
        cls,
        docs: Iterable[Iterable[str]],
        specials: Specials,
        min_count: int = 1,
        max_size: int | None = None,
        *,
        order: str = "count",
        sep: str = "",
        max_length: int | None = None,
    ) -> TokenTable:
        """The tokens of ``docs`` seen ``min_count`` times or more, after the specials.

        ``order="count"``: by falling count, ties in code-point order (the common tokens keep the same
        ids whatever the rare ones are); ``order="token"``: in code-point order. ``max_size`` caps the
        whole table, specials included (``None``: no cap).
        """
        if order not in ORDERS:
            raise ValueError(f"order: expected one of {list(ORDERS)}, got {order!r}")
        counts = Counter(t for doc in docs for t in doc)
        kept = sorted(t for t, n in counts.items() if n >= min_count)  # code-point order
        if order == "count":
            kept.sort(key=lambda t: -counts[t])  # stable: equal counts stay in code-point order
        head = specials.tokens
        if max_size is not None:
            kept = kept[: max(0, max_size - len(head))]
        return cls([*head, *kept], specials, sep=sep, max_length=max_length)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def max_length(self) -> int:
        """The longest output a decoder writes from this table, where the training data fixed one (the
        speech recogniser's: its longest training transcript plus 5). Other tasks' limits come from
        their configs: asking a table built without one is a ``ValueError``."""
        if self._max_length is None:
            raise ValueError("max_length: this token table has none (the task's config sets the limit)")
        return self._max_length

    def __repr__(self) -> str:
        return f"TokenTable({len(self)} tokens, specials {self.specials.tokens})"

    def encode(self, tokens: Iterable[str], what: str = "text") -> list[int]:
        """The ids of ``tokens``. A token not in the table becomes ``unk_id``; in a table without an
        unknown token it is a :class:`DataError` naming ``what`` and every missing token."""
        index, unk = self.index, self.unk_id
        if unk is not None:
            return [index.get(t, unk) for t in tokens]
        tokens = list(tokens)
        missing = sorted({t for t in tokens if t not in index})
        if missing:
            raise DataError(f"{what}: not in the model's vocabulary: {' '.join(map(repr, missing))}")
        return [index[t] for t in tokens]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``, tokens joined by ``sep``. Padding, start and end are not text and are
        left out; the unknown token stays (it shows where a word was)."""
        silent, tokens = self._silent, self.tokens
        return self.sep.join(tokens[i] for i in map(int, ids) if i not in silent)
