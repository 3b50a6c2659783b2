"""Vocabularies: Unicode characters kept by frequency (with an unknown token), or raw bytes.

Encoding is vectorised: text becomes an array of code points (``utf-32``), and one lookup table over
all of Unicode maps code points to ids, so a character vocabulary encodes hundreds of MB/s.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

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
