"""Reading a whole (small) text file with one-line errors: missing, a folder, empty, binary, undecodable.

Large corpora go through :mod:`rnnkit.data.corpus` in chunks; this is for labelled data and series that
fit in memory. A ``.zip`` holding exactly one file is read as that file.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

from rnnkit.errors import DataError

UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")
BOM = "\ufeff"
"""The byte-order mark as a character: dropped wherever a reader meets it (the start of a file, or
where files were joined), since it is never text."""


def looks_utf16(head: bytes) -> bool:
    """A UTF-16 byte-order mark, or ASCII-range text as UTF-16: every other byte 0, the others not."""
    if head.startswith(UTF16_MARKS):
        return True
    if len(head) < 16:
        return False
    even, odd = head[0::2], head[1::2]
    for zeros, text in ((odd, even), (even, odd)):
        if zeros.count(0) > 0.8 * len(zeros) and text.count(0) < 0.1 * len(text):
            return True
    return False


def check_not_binary(head: bytes, name: str, what: str = "text") -> None:
    """Refuse the first bytes of a file that is not UTF-8 text: a :class:`DataError` naming it, with a
    hint where one helps (UTF-16 is text, but needs ``--encoding utf-16``)."""
    if looks_utf16(head):
        raise DataError(f"{name}: looks like UTF-16 text, not UTF-8: use --encoding utf-16")
    if b"\x00" in head[:8192]:
        raise DataError(f"{name}: looks binary (NUL bytes in the first 8 KB), not {what}")


def read_text_file(path: Path, encoding: str = "utf-8", what: str = "a text file") -> str:
    """The text of ``path`` without byte-order marks (anywhere); a :class:`DataError` naming the file
    otherwise."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected {what}") from None
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                if len(names) != 1:
                    raise DataError(f"{path}: expected a zip holding one file, found {len(names)} files")
                raw = archive.read(names[0])
        except zipfile.BadZipFile:
            raise DataError(f"{path}: not a valid zip file") from None
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    if not encoding.lower().replace("-", "").startswith(("utf16", "utf32")):
        check_not_binary(raw[:8192], str(path), what)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid {encoding} at byte {exc.start} (try --encoding)") from None
    except LookupError:
        raise DataError(f"--encoding: unknown encoding {encoding!r}") from None
    return text.replace(BOM, "")


def read_lines(files: list[Path] | None, encoding: str = "utf-8") -> list[str]:
    """The non-empty lines of ``files``, stripped, in order (``-`` or no files: standard input); a
    :class:`DataError` when there are none. What ``rnnkit classify predict`` and ``tag predict`` read."""
    lines: list[str] = []
    for path in files or [Path("-")]:
        text = sys.stdin.read() if str(path) == "-" else read_text_file(path, encoding)
        lines += [line.strip() for line in text.split("\n") if line.strip()]
    if not lines:
        raise DataError("no text given (empty input)")
    return lines
