"""Labelled text from CSV and TSV files, and the word/character tokens a classifier or a tagger reads
(their tables are :class:`rnnkit.data.vocab.TokenTable` with :data:`TEXT_SPECIALS`).

``read_table`` takes a file, a text column and a label column (names, or 0-based numbers), finds the
delimiter (tab for ``.tsv`` or a first line with a tab, else comma) and whether the first row is a
header, and reads CRLF line ends and, in CSV files, quoted fields with embedded commas, quotes and
newlines, through Python's ``csv`` module. Tab-separated files are read unquoted (as GLUE writes
them): a lone ``"`` inside a sentence is text. A row it cannot use is a :class:`DataError` naming
the file, the line and what was expected.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.files import read_text_file
from rnnkit.data.vocab import Specials
from rnnkit.errors import DataError

csv.field_size_limit(1 << 24)

WORD_RE = re.compile(r"\w+(?:'\w+)?|[^\w\s]")
TEXT_SPECIALS = Specials(pad="<pad>", unk="<unk>")
"""The specials of the classifier's and the tagger's token and bigram tables: ``<pad>`` 0, ``<unk>`` 1."""


@dataclass
class Table:
    texts: list[str]
    labels: list[str]
    skipped_empty: int = 0


def _column(spec: str | int, header: list[str] | None, path: Path, what: str) -> int:
    if isinstance(spec, int) or str(spec).lstrip("-").isdigit():
        index = int(spec)
        if index < 0:
            raise DataError(f"--{what}-column: expected a name or a 0-based number, got {spec}")
        return index
    if header is None:
        raise DataError(f"{path}: --{what}-column {spec!r} is a name, but the file has no header row")
    if spec not in header:
        raise DataError(
            f"{path}: no column named {spec!r} for --{what}-column (columns: {', '.join(header)})"
        )
    return header.index(spec)


def sniff_delimiter(path: Path, first_line: str) -> str:
    if path.suffix.lower() == ".tsv" or "\t" in first_line:
        return "\t"
    return ","


def read_table(
    path: Path,
    text_column: str | int,
    label_column: str | int | None,
    *,
    delimiter: str | None = None,
    header: bool | None = None,
    encoding: str = "utf-8",
) -> Table:
    """Texts and labels (as strings) of every row; rows with an empty text are skipped and counted.

    ``header=None`` decides by itself: a header is assumed when a column is given by name, or when
    the first row's label occurs nowhere else in the label column (``label`` above ``0``/``1`` rows).
    ``label_column=None`` reads texts only (for prediction); labels are then empty strings.
    """
    path = Path(path)
    text = read_text_file(path, encoding, "a CSV or TSV file")
    delimiter = delimiter or sniff_delimiter(path, text.split("\n", 1)[0])
    # StringIO(newline="") splits on \n, \r and \r\n only: U+0085 inside a sentence stays text
    # TSV files in NLP are not quoted (a review may hold a lone "): quotes are text there, as in GLUE
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=delimiter,
        quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL,
    )
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: {exc}") from None
    if not rows:
        raise DataError(f"{path}: the file holds no rows")
    named = any(
        not (isinstance(c, int) or str(c).isdigit()) for c in (text_column, label_column) if c is not None
    )
    first = rows[0][1]
    if header is None:
        if named:
            header = True
        elif label_column is not None and len(rows) > 1:
            index = int(label_column)
            rest = {row[index].strip() for _, row in rows[1:] if len(row) > index}
            header = index < len(first) and first[index].strip() not in rest
        else:
            header = False
    names = [cell.strip() for cell in first] if header else None
    body = rows[1:] if header else rows
    text_at = _column(text_column, names, path, "text")
    label_at = _column(label_column, names, path, "label") if label_column is not None else None
    need = max(text_at, label_at if label_at is not None else 0) + 1
    texts, labels, empty = [], [], 0
    for line, row in body:
        if len(row) < need:
            sep = "tab" if delimiter == "\t" else "comma"
            raise DataError(
                f"{path}:{line}: expected at least {need} {sep}-separated columns, found {len(row)}"
            )
        value = row[text_at].strip()
        if not value:
            empty += 1
            continue
        label = row[label_at].strip() if label_at is not None else ""
        if label_at is not None and not label:
            raise DataError(f"{path}:{line}: empty label in column {label_at}")
        texts.append(value)
        labels.append(label)
    if not texts:
        raise DataError(f"{path}: no row has a text")
    return Table(texts, labels, empty)


# -------------------------------------------------------------------------------------------------
# tokens


def is_cjk(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith(
        ("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH", "HIRAGANA", "KATAKANA")
    )


def choose_tokens(texts: Iterable[str], sample: int = 500) -> str:
    """``char`` when at least 30% of the non-space characters are CJK (Chinese, Japanese), else ``word``."""
    cjk = total = 0
    for i, text in enumerate(texts):
        if i >= sample:
            break
        for ch in text:
            if not ch.isspace():
                total += 1
                cjk += is_cjk(ch)
    return "char" if total and cjk / total >= 0.3 else "word"


def tokenize(text: str, kind: str) -> list[str]:
    """Characters (spaces dropped) or lower-cased words and punctuation marks."""
    if kind == "char":
        return [ch for ch in text if not ch.isspace()]
    return WORD_RE.findall(text.lower())


BOUNDARY = "\u2402"  # stands for the text's edge in a bigram key (a control picture, not text)


def token_key(token: str, kind: str) -> str:
    return token if kind == "char" else token.lower()


def bigram_keys(tokens: list[str], kind: str) -> list[str]:
    """The n + 1 bigrams of n tokens: (edge, t1), (t1, t2), ..., (tn, edge). A model reading them gives
    step t its left bigram (t) and its right bigram (t + 1)."""
    keys = [BOUNDARY, *(token_key(w, kind) for w in tokens), BOUNDARY]
    return [f"{a}\t{b}" for a, b in itertools.pairwise(keys)]
