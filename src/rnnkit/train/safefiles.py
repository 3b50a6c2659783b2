"""Reading files of a run folder that may come from someone else: nothing in them is trusted.

Each file is ``lstat``ed before it is opened (a regular file, never a symlink, FIFO or device), opened
without following links, size-checked (against the manifest, or a ceiling), and read and hashed in
chunks. A safetensors header is read without its tensors, so shapes can be checked before anything is
built or loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
from pathlib import Path

from rnnkit.errors import CheckpointError

MAX_JSON_BYTES = 64 * 2**20
"""The largest JSON file of a run folder that is read (a vocabulary of a million tokens fits)."""
_CHUNK = 2**20


def _open_regular(path: Path, size: int | None, limit: int) -> tuple[int, int]:
    """``(descriptor, bytes)`` of ``path``, opened read-only without following links, once it is shown to
    be a regular file (lstat before opening, fstat after) of exactly ``size`` bytes when given, and of at
    most ``limit`` whatever the manifest says (a re-signed manifest can say anything)."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
            raise CheckpointError(f"{path}: {kind}; a run folder holds only regular files")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror})") from None
    found = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(found.st_mode):  # swapped for something else after the lstat
        problem = f"{path}: not a regular file"
    elif size is not None and found.st_size != size:
        problem = (
            f"{path}: does not match its checksum record ({found.st_size:,} bytes where the manifest "
            f"records {size:,}): the file is corrupt or was changed"
        )
    elif found.st_size > limit:
        problem = f"{path}: {found.st_size:,} bytes, more than the {limit:,} this file may have"
    if problem:
        os.close(fd)
        raise CheckpointError(problem)
    return fd, found.st_size


def read_regular_file(
    path: Path, *, size: int | None = None, limit: int = MAX_JSON_BYTES, keep: bool = True
) -> tuple[bytes, str]:
    """The bytes of ``path`` (empty unless ``keep``) and their SHA-256, or a one-line CheckpointError.

    ``path`` is opened as :func:`_open_regular` says (a regular file, never a symlink, FIFO or device;
    ``size`` bytes when given, at most ``limit`` in any case), read and hashed in chunks; a file that
    grows or shrinks while it is read is refused too.
    """
    fd, total = _open_regular(path, size, limit)
    digest, chunks, got = hashlib.sha256(), [], 0
    try:
        while chunk := os.read(fd, min(_CHUNK, total - got + 1)):
            got += len(chunk)
            if got > total:
                raise CheckpointError(f"{path}: changed while it was read")
            digest.update(chunk)
            if keep:
                chunks.append(chunk)
        data = b"".join(chunks)
    except MemoryError:
        raise CheckpointError(f"{path}: {total:,} bytes do not fit in memory") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if got != total:
        raise CheckpointError(f"{path}: changed while it was read")
    return data, digest.hexdigest()


def parse_json(data: bytes, path: Path, what: str) -> object:
    """JSON from a run folder, or a one-line :class:`CheckpointError` (nesting too deep included)."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: corrupt {what} (not JSON)") from None


def read_json_file(path: Path, what: str) -> object:
    """A JSON file of a run folder, read as :func:`read_regular_file` reads (bounded, no symlinks)."""
    return parse_json(read_regular_file(path)[0], path, what)


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1}  # fmt: skip


def read_safetensors_shapes(path: Path, size: int | None = None) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes in a safetensors file's header, read without its tensors; the header
    must account for every byte of the file (``size`` bytes when given)."""
    fd, total = _open_regular(path, size, 2**62)
    try:
        head = os.read(fd, 8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 2 <= length <= min(total - 8, 100 * 2**20):
            raise CheckpointError(f"{path}: not a safetensors file (bad header length)")
        header = parse_json(os.read(fd, length), path, "safetensors header")
    finally:
        os.close(fd)
    shapes, end = {}, 0
    try:
        assert isinstance(header, dict)
        for key, info in header.items():
            if key == "__metadata__":
                continue
            dims, (start, stop) = info["shape"], info["data_offsets"]
            assert all(isinstance(d, int) and d >= 0 for d in (*dims, start, stop))
            numel = 1
            for d in dims:
                numel *= d
            assert stop - start == numel * _DTYPE_BYTES[info["dtype"]]
            shapes[key] = tuple(dims)
            end = max(end, stop)
    except (AssertionError, KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path}: not a safetensors file (malformed header)") from None
    if 8 + length + end != total:
        raise CheckpointError(f"{path}: not a safetensors file (the header does not account for its size)")
    return shapes
