"""Corpus readers and the streaming encoder that turns them into memmapped token files.

A corpus is a list of documents: plain text files (UTF-8 by default, CRLF normalised to LF), poem
collections in the chinese-poetry JSON layout (lists of ``{title, author, paragraphs}``), or
``python-stdlib``: the ``.py`` files of the running Python's standard library, which exists on every
machine. Text is read in chunks and never held whole in memory; the encoded corpus is written as raw
token arrays (``train.bin``, ``val.bin``) that training reads through ``numpy.memmap``, so a corpus far
larger than RAM trains.
"""

from __future__ import annotations

import codecs
import glob
import json
import logging
import os
import sysconfig
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.files import BOM, check_not_binary
from rnnkit.data.vocab import Vocabulary, count_chars
from rnnkit.errors import DataError

log = logging.getLogger("rnnkit")

STDLIB = "python-stdlib"
CHUNK_BYTES = 1 << 22
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


@dataclass(frozen=True)
class Document:
    """One input file. ``kind`` is ``"text"`` or ``"poems"``; ``name`` is what messages call it."""

    path: Path
    kind: str
    name: str


# -------------------------------------------------------------------------------------------------
# finding documents


def stdlib_files() -> list[Document]:
    """The standard library's ``.py`` files, tests and third-party packages left out, sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS for part in rel.parts[:-1]) or rel.name.startswith("test_"):
            continue
        docs.append(Document(path, "text", str(rel)))
    if not docs:
        raise DataError(f"python-stdlib: no .py files found under {root}")
    return docs


def _document(path: Path) -> Document:
    kind = "poems" if path.suffix.lower() == ".json" else "text"
    return Document(path, kind, str(path))


def folder_files(folder: Path, strict: bool = False) -> list[Path]:
    """The text files below ``folder``, sorted. As ripgrep does, hidden files and folders (``.git``) are
    skipped, and so are binary files (NUL bytes, or UTF-16 without ``--encoding``), with one line saying
    how many; ``strict`` refuses a binary file instead."""
    hidden = binary = 0
    found = []
    for path in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            hidden += path.is_file()
            continue
        if not path.is_file():
            continue
        try:
            with open(path, "rb") as handle:
                check_not_binary(handle.read(8192), str(path))
        except DataError:
            if strict:
                raise
            binary += 1
            continue
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc.strerror}") from None
        found.append(path)
    if hidden or binary:
        log.info("%s: skipped %d hidden and %d binary files", folder, hidden, binary)
    if not found:
        raise DataError(
            f"{folder}: the folder holds no text files ({hidden} hidden, {binary} binary skipped)"
        )
    return found


def resolve_sources(specs: list[str], strict: bool = False) -> list[Document]:
    """Files, folders (their text files, see :func:`folder_files`), globs, or ``python-stdlib``, in the
    order given."""
    docs: list[Document] = []
    for spec in specs:
        if spec == STDLIB:
            docs.extend(stdlib_files())
            continue
        path = Path(spec).expanduser()
        if path.is_file():
            docs.append(_document(path))
        elif path.is_dir():
            docs.extend(_document(p) for p in folder_files(path, strict))
        elif any(ch in spec for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True))
            found = [p for p in found if p.is_file()]
            if not found:
                raise DataError(f"{spec}: the pattern matches no file")
            docs.extend(_document(p) for p in found)
        else:
            raise DataError(f"{spec}: no such file or folder")
    if not docs:
        raise DataError("no input given")
    return docs


# -------------------------------------------------------------------------------------------------
# reading documents as text, in chunks


def read_chunks(doc: Document, encoding: str = "utf-8", errors: str = "strict") -> Iterator[str]:
    """The text of ``doc`` in chunks of a few MB, CRLF turned into LF; poems one per paragraph line."""
    if doc.kind == "poems":
        yield from _poem_chunks(doc, encoding, errors)
    else:
        yield from _text_chunks(doc, encoding, errors)


def _text_chunks(doc: Document, encoding: str, errors: str) -> Iterator[str]:
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors)
    except LookupError:
        raise DataError(f"--encoding: unknown encoding {encoding!r}") from None
    offset, held_cr = 0, False
    try:
        handle = open(doc.path, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise DataError(f"{doc.name}: cannot read: {exc.strerror}") from None
    try:
        while True:
            raw = handle.read(CHUNK_BYTES)
            if offset == 0 and encoding.lower().replace("-", "") in ("utf8", "ascii"):
                check_not_binary(raw, doc.name)
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                at = offset + exc.start
                raise DataError(
                    f"{doc.name}: not valid {encoding} at byte {at} (try --encoding or --errors replace)"
                ) from None
            offset += len(raw)
            if held_cr:
                text = "\r" + text
            held_cr = text.endswith("\r") and bool(raw)
            if held_cr:
                text = text[:-1]
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            if BOM in text:  # at the start of a file, or where files were joined: never text
                text = text.replace(BOM, "")
            if text:
                yield text
            if not raw:
                break
    finally:
        handle.close()


def _poem_chunks(doc: Document, encoding: str, errors: str) -> Iterator[str]:
    try:
        data = json.loads(doc.path.read_bytes().decode(encoding, errors).replace(BOM, ""))
    except OSError as exc:
        raise DataError(f"{doc.name}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{doc.name}: not valid {encoding} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{doc.name}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise DataError(f"{doc.name}: expected a JSON list of poems ({{title, author, paragraphs}})")
    parts: list[str] = []
    size = poems = 0
    for i, poem in enumerate(data):
        paragraphs = poem.get("paragraphs") if isinstance(poem, dict) else None
        if not isinstance(paragraphs, list) or not all(isinstance(p, str) for p in paragraphs):
            raise DataError(f"{doc.name}: poem {i}: expected a 'paragraphs' list of strings")
        lines = [p.strip() for p in paragraphs if p.strip()]
        if not lines:
            continue
        text = "\n".join(lines) + "\n\n"  # one couplet per line, a blank line between poems
        poems += 1
        parts.append(text)
        size += len(text)
        if size >= CHUNK_BYTES // 4:
            yield "".join(parts)
            parts, size = [], 0
    if parts:
        yield "".join(parts)
    if not poems:
        raise DataError(f"{doc.name}: no poem with text in it")


# -------------------------------------------------------------------------------------------------
# splitting and encoding


@dataclass
class EncodedCorpus:
    """Token files written by :func:`encode_corpus`, and what they hold."""

    folder: Path
    vocab: Vocabulary
    train_tokens: int
    val_tokens: int
    documents: int

    def tokens(self, split: str) -> np.ndarray:
        """A read-only memmap of ``split`` (``"train"`` or ``"val"``); empty if it has no tokens."""
        count = self.train_tokens if split == "train" else self.val_tokens
        if count == 0:
            return np.zeros(0, dtype=self.vocab.dtype)
        return np.memmap(self.folder / f"{split}.bin", dtype=self.vocab.dtype, mode="r", shape=(count,))

    def to_dict(self) -> dict:
        return {"train_tokens": self.train_tokens, "val_tokens": self.val_tokens, "documents": self.documents}

    @classmethod
    def load(cls, folder: Path, vocab: Vocabulary, info: dict) -> EncodedCorpus:
        corpus = cls(
            folder, vocab, int(info["train_tokens"]), int(info["val_tokens"]), int(info["documents"])
        )
        for split, count in (("train", corpus.train_tokens), ("val", corpus.val_tokens)):
            path = folder / f"{split}.bin"
            expected = count * vocab.dtype.itemsize
            if count and (not path.is_file() or path.stat().st_size != expected):
                raise DataError(
                    f"{path}: token file missing or of the wrong size (expected {expected} bytes)"
                )
        return corpus


def held_out(doc: Document, fraction: float) -> bool:
    """Whether a whole file goes to validation: a stable hash of its name, so the split never moves."""
    return (zlib.crc32(doc.name.encode("utf-8")) % 10_000) < round(fraction * 10_000)


def encode_corpus(
    docs: list[Document],
    folder: Path,
    *,
    vocab_kind: str = "char",
    max_vocab: int | None = None,
    val_fraction: float = 0.1,
    split: str = "tail",
    encoding: str = "utf-8",
    errors: str = "strict",
    vocab: Vocabulary | None = None,
) -> EncodedCorpus:
    """Encode ``docs`` into ``folder/train.bin`` and ``folder/val.bin``.

    ``split="tail"`` holds out the last ``val_fraction`` of the text (as nanoGPT splits Shakespeare);
    ``split="files"`` holds out whole files chosen by a stable hash of their names. The character
    vocabulary is counted on the training part only, so validation stays unseen. Reads every file
    twice (three times for ``tail``), in chunks, never the whole corpus at once.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a fraction in [0, 1), got {val_fraction}")
    folder.mkdir(parents=True, exist_ok=True)

    def pieces() -> Iterator[tuple[Document, str]]:
        empty = []
        for doc in docs:
            last = ""
            for chunk in read_chunks(doc, encoding, errors):
                last = chunk
                yield doc, chunk
            if not last:
                empty.append(doc.name)  # an empty __init__.py among many is fine; all empty is not
            elif split == "files" and not last.endswith("\n"):
                yield doc, "\n"
        if len(empty) == len(docs):
            raise DataError(
                f"{empty[0]}: the file is empty" if len(docs) == 1 else "every input file is empty"
            )

    # Where the split falls, in characters (tail) or by file (files).
    boundary: int | None = None
    if split == "tail":
        total = sum(len(chunk) for _, chunk in pieces())
        boundary = int(total * (1.0 - val_fraction))  # as nanoGPT: data[:int(n * 0.9)]
    elif split != "files":
        raise ValueError(f"split: expected 'tail' or 'files', got {split!r}")

    def split_pieces() -> Iterator[tuple[str, str]]:
        """(split name, text) pieces in corpus order."""
        position = 0
        for doc, chunk in pieces():
            if boundary is None:
                yield ("val" if val_fraction and held_out(doc, val_fraction) else "train"), chunk
                continue
            cut = min(max(boundary - position, 0), len(chunk))
            if cut:
                yield "train", chunk[:cut]
            if cut < len(chunk):
                yield "val", chunk[cut:]
            position += len(chunk)

    if vocab is None:
        if vocab_kind == "byte":
            vocab = Vocabulary.bytes()
        else:
            counts = None
            for name, text in split_pieces():
                if name == "train":
                    counts = count_chars(text, counts)
            if counts is None:
                raise DataError("the training part of the corpus is empty")
            vocab = Vocabulary.from_counts(counts, max_vocab)
            if len(vocab) < 2:  # the unknown token alone: a model of it could never write anything
                raise DataError(
                    f"{docs[0].name if len(docs) == 1 else 'the corpus'}: no readable characters, only "
                    "U+FFFD replacement characters (read with the wrong --encoding, or --errors replace "
                    "on a file that is not text?)"
                )

    sizes = {"train": 0, "val": 0}
    tmp = {name: folder / f".{name}.bin.tmp" for name in sizes}
    handles = {name: open(path, "wb") for name, path in tmp.items()}  # noqa: SIM115
    try:
        for name, text in split_pieces():
            ids = vocab.encode(text)
            handles[name].write(ids.tobytes())
            sizes[name] += len(ids)
        for handle in handles.values():
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        for handle in handles.values():
            handle.close()
    for name, path in tmp.items():
        os.replace(path, folder / f"{name}.bin")
    if sizes["train"] == 0:
        raise DataError("the training part of the corpus is empty")
    return EncodedCorpus(folder, vocab, sizes["train"], sizes["val"], len(docs))
