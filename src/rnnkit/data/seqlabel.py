"""Sequence-labelling data: CoNLL-style files, segmented text, B/M/E/S tags, and their scores.

- CoNLL style: ``token<TAB>tag`` per line (or whitespace before the last field), a blank line between
  sentences. Tolerated as found in real files: lines holding only tabs or spaces as sentence breaks
  (WNUT-17), a language prefix on every token (``en:Saunders`` in WikiANN, removed), CRLF, a ``.zip``
  holding one text file (MSRA), ``-DOCSTART-`` lines (skipped), and byte-order marks (U+FEFF) on any
  line, not only the first, dropped: WNUT-17's ``emerging.dev.conll`` has one after a token and one on
  a line of its own, which then reads as a blank line.
- Segmented text: one sentence per line, words separated by spaces (SIGHAN/SXU word segmentation).
  Each character gets a tag: ``S`` (a one-character word), or ``B``, ``M``..., ``E`` (begin, middle,
  end of a longer word); :func:`tags_to_words` turns tags back into words.

Scores: entity-level precision/recall/F1 with ``seqeval`` (CoNLL conventions), and word-segmentation
precision/recall/F1 as the SIGHAN bakeoff scores it (a word counts when both its boundaries match).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.files import read_text_file
from rnnkit.errors import DataError

PREFIX_RE = re.compile(r"^[a-z]{2,3}:")
BOM = "\ufeff"


@dataclass
class Sentences:
    tokens: list[list[str]]
    tags: list[list[str]]


def read_conll(path: Path, encoding: str = "utf-8") -> Sentences:
    """Sentences of ``token<TAB>tag`` lines; see the module docstring for what is tolerated."""
    text = read_text_file(path, encoding, "a text file")
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    words: list[str] = []
    labels: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r").replace(BOM, "")
        if not line.strip():
            if words:
                tokens.append(words)
                tags.append(labels)
                words, labels = [], []
            continue
        if line.startswith("-DOCSTART-"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p for p in parts if p.strip()] if "\t" in line else parts
        if len(parts) < 2:
            raise DataError(f"{path}:{number}: expected 'token<TAB>tag', got {line[:60]!r}")
        words.append(parts[0].strip())
        labels.append(parts[-1].strip())
    if words:
        tokens.append(words)
        tags.append(labels)
    if not tokens:
        raise DataError(f"{path}: no sentences found")
    if all(PREFIX_RE.match(w) for sentence in tokens[:200] for w in sentence):
        tokens = [[PREFIX_RE.sub("", w, count=1) for w in sentence] for sentence in tokens]
    return Sentences(tokens, tags)


def words_to_tags(words: list[str]) -> list[str]:
    """B/M/E/S tags of the characters of ``words``."""
    tags = []
    for word in words:
        if len(word) == 1:
            tags.append("S")
        else:
            tags += ["B"] + ["M"] * (len(word) - 2) + ["E"]
    return tags


def tags_to_words(chars: list[str], tags: list[str]) -> list[str]:
    """Words from characters and B/M/E/S tags; an ill-formed sequence still gives words (a word ends
    at E or S, or before a B or S)."""
    words, current = [], ""
    for ch, tag in zip(chars, tags, strict=True):
        if tag in ("B", "S") and current:
            words.append(current)
            current = ""
        current += ch
        if tag in ("E", "S"):
            words.append(current)
            current = ""
    if current:
        words.append(current)
    return words


def read_segmented(path: Path, encoding: str = "utf-8") -> Sentences:
    """One sentence per line, words separated by whitespace -> characters and B/M/E/S tags."""
    text = read_text_file(path, encoding, "a text file")
    tokens, tags = [], []
    for line in text.split("\n"):
        words = line.replace(BOM, "").split()
        if not words:
            continue
        tokens.append([ch for word in words for ch in word])
        tags.append(words_to_tags(words))
    if not tokens:
        raise DataError(f"{path}: no sentences found")
    return Sentences(tokens, tags)


def read_sentences(path: Path, fmt: str, encoding: str = "utf-8") -> Sentences:
    if fmt == "conll":
        return read_conll(path, encoding)
    if fmt == "segmented":
        return read_segmented(path, encoding)
    raise DataError(f"--format: expected conll or segmented, got {fmt!r}")


# -------------------------------------------------------------------------------------------------
# scores


def word_spans(tags: list[str]) -> list[tuple[int, int]]:
    """(first, last) character index of each word, cutting where :func:`tags_to_words` cuts."""
    spans, start = [], None
    for i, tag in enumerate(tags):
        if tag in ("B", "S") and start is not None:
            spans.append((start, i - 1))
            start = None
        if start is None:
            start = i
        if tag in ("E", "S"):
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(tags) - 1))
    return spans


def segmentation_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """SIGHAN word-segmentation precision, recall and F1 from B/M/E/S tag sequences."""
    correct = found = expected = 0
    for g, p in zip(gold, pred, strict=True):
        gold_spans, pred_spans = set(word_spans(g)), set(word_spans(p))
        correct += len(gold_spans & pred_spans)
        found += len(pred_spans)
        expected += len(gold_spans)
    precision = correct / found if found else 0.0
    recall = correct / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 (micro over entity types), as seqeval computes them."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    return {
        "precision": float(precision_score(gold, pred, zero_division=0)),
        "recall": float(recall_score(gold, pred, zero_division=0)),
        "f1": float(f1_score(gold, pred, zero_division=0)),
    }
