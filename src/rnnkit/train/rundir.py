"""Run folders: recognised by their manifest, locked while in use, replaced only when provably ours.

Every training goes through one :class:`RunFolder`::

    with RunFolder(out, force=force, resume=resume) as run:
        ...read the data, build the model (nothing written to out yet)...
        run.commit()            # a new run: out emptied (when replaced) and given its manifest
        ...train...

- The folder is locked (``fcntl.flock`` on ``out/.lock``) from the start of the ``with`` to its end, so
  a second training, resume or ``--force`` on the same folder stops at once (exit 2) naming the
  process that holds it; the lock ends with the process, so a killed run never leaves a stale one.
- A new run writes nothing but the lock file until :meth:`RunFolder.commit`; a failure before it (bad
  data, a model too large) removes a folder it created, and leaves a folder it found as it was.
- A folder is replaced (``--force``) only when it is provably a run (its ``manifest.json``, or an
  ensemble's ``ensemble.json``) and holds nothing rnnkit does not write; a run stopped before its first
  checkpoint holds nothing to lose, and a new run replaces it without ``--force``.
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from rnnkit.errors import CheckpointError, UsageError
from rnnkit.train.checkpoint import (
    ENSEMBLE_FILE,
    FORMAT_VERSION,
    MANIFEST,
    STAGES,
    has_checkpoint,
    read_manifest,
    record_file,
    write_manifest,
)
from rnnkit.train.safefiles import read_json_file

LOCK_FILE = ".lock"
OURS = re.compile(
    r"manifest\.json|config\.json|metrics\.jsonl|ensemble\.json|data|pretrain|tensorboard|curves\.png|report\.html"
    r"|forecast-[a-z]+\.png|ckpt-[0-9]+|member-[0-9]+|\.lock|\.tmp-.+|\..+\.tmp-[0-9]+"
)
"""The names rnnkit writes at the top of a run folder (files of its own making, temporaries included)."""


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` holds a manifest (or an ensemble record, or an earlier stage's manifest)."""
    for folder in (path, *(path / stage for stage in STAGES)):
        try:
            read_manifest(folder, need_checkpoint=False)
            return True
        except CheckpointError:
            pass
    try:
        record = read_json_file(path / ENSEMBLE_FILE, "ensemble record")
    except CheckpointError:
        return False
    return isinstance(record, dict) and record.get("format_version") == FORMAT_VERSION


def foreign_entries(path: Path) -> list[str]:
    """The entries of ``path`` that rnnkit did not write (a symbolic link is never rnnkit's)."""
    return sorted(e.name for e in path.iterdir() if e.is_symlink() or not OURS.fullmatch(e.name))


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _open_lock(path: Path, flags: int) -> int:
    """The lock file's descriptor; anything but a regular file there (a FIFO, a symlink, a folder that
    someone put in its place) is a one-line error, never a hang or a traceback."""
    lock = Path(path) / LOCK_FILE
    try:
        fd = os.open(lock, flags | _NOFOLLOW, 0o644)
    except OSError as exc:
        raise UsageError(f"{lock}: cannot be used as the run's lock ({exc.strerror}); remove it") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{lock}: not a regular file, so it cannot be the run's lock; remove it")
    return fd


def no_symlink(path: Path) -> Path:
    """``path``, to be written: refused when it is a symbolic link, which a run folder from someone else
    could hold to make rnnkit write elsewhere (reports, plots and metrics go into run folders)."""
    if Path(path).is_symlink():
        raise UsageError(f"{path}: a symbolic link; rnnkit writes only files of its own, not through links")
    return Path(path)


def refuse_if_busy(path: Path) -> None:
    """A :class:`UsageError` naming the process that trains into ``path``, if one does (read-only: it
    writes nothing, so a refused command leaves the folder as it was)."""
    if not os.path.lexists(Path(path) / LOCK_FILE):
        return
    fd = _open_lock(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(Path(path), _holder(fd)) from None
    finally:
        os.close(fd)


def _busy(path: Path, holder: str) -> UsageError:
    return UsageError(f"{path} is in use by {holder}; wait for it to finish or stop it first")


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 300).decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else "another process"


class RunFolder:
    """The run folder ``path`` for one training (see the module's docstring). ``rank`` > 0 (a DDP worker)
    neither locks nor writes: rank 0 does both."""

    def __init__(self, path: Path, *, force: bool = False, resume: bool = False, rank: int = 0) -> None:
        self.path = Path(path)
        self.force, self.resume, self.rank = force, resume, rank
        self.created: Path | None = None
        self.committed = False
        self.staged: Path | None = None
        self._replace = False
        self._fd: int | None = None

    def __enter__(self) -> RunFolder:
        if self.rank != 0:
            return self
        path = self.path
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise UsageError(f"--out: {path} exists and is not a folder")
        if self.resume and not path.is_dir():
            raise CheckpointError(f"{path}: no such run folder")
        # checked before the lock file is written (a refused folder is left exactly as it was), and again
        # under the lock, which another process may have held meanwhile
        refuse_if_busy(path)
        self._check()
        self.created = self._top_missing(path)
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock()
            self._check()
            if not self.resume:
                self._clean_staging()  # under the lock: a staging folder of ours is a dead run's
        except BaseException:
            self._release(failed=True)
            raise
        return self

    @staticmethod
    def _top_missing(path: Path) -> Path | None:
        """The topmost folder of ``path`` that does not exist yet (removed again on failure)."""
        top = None
        while not path.exists():
            top, path = path, path.parent
        return top

    def __exit__(self, kind, value, traceback) -> None:
        self._release(failed=kind is not None)

    # ---------------------------------------------------------------------------------------------

    def _lock(self) -> None:
        lock = self.path / LOCK_FILE
        while True:
            fd = _open_lock(self.path, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise _busy(self.path, holder) from None
            try:  # the holder we waited on may have removed the file: then lock the new one
                if os.stat(lock, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        command = " ".join(["rnnkit", *sys.argv[1:]])[:200]
        os.ftruncate(fd, 0)
        os.write(fd, f"rnnkit process {os.getpid()} ({command})\n".encode())
        self._fd = fd

    def _release(self, failed: bool) -> None:
        """Unlock; the lock file goes too (removed while held, so no other process can hold it then)."""
        if self.staged is not None:
            shutil.rmtree(self.staged, ignore_errors=True)
            self.staged = None
        if self._fd is None:
            return
        if failed and not self.committed and self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)  # made by us: the lock file is all it holds
        else:
            (self.path / LOCK_FILE).unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def _check(self) -> None:
        if self.resume:
            if not is_run_folder(self.path):
                read_manifest(self.path, need_checkpoint=False)  # raises the one-line reason
        elif self.path.is_dir():
            self._check_new()

    def _check_new(self) -> None:
        """Refuse a folder a new run may not replace; changes nothing."""
        path = self.path
        entries = [e for e in path.iterdir() if e.name != LOCK_FILE]
        if not entries:
            return
        if not is_run_folder(path):
            raise UsageError(
                f"--out: {path} holds files and is not an rnnkit run folder (no {MANIFEST}); "
                "refusing to empty it even with --force: choose another --out"
            )
        foreign = foreign_entries(path)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise UsageError(
                f"--out: {path} holds files rnnkit did not write ({shown}); refusing to replace it even "
                "with --force: move them out first"
            )
        started = has_checkpoint(path) or any(has_checkpoint(path / stage) for stage in STAGES)
        if started and not self.force and not (path / ENSEMBLE_FILE).exists():
            raise UsageError(
                f"--out: {path} already holds a run; use --resume {path} to continue it, or --force to "
                "replace it"
            )
        if (path / ENSEMBLE_FILE).exists() and not self.force:
            raise UsageError(
                f"--out: {path} already holds an ensemble; use --resume {path} to continue it, or --force "
                "to replace it"
            )
        self._replace = True

    def _clean_staging(self) -> None:
        """Staging folders of this run left by a process killed mid-encoding (it held our lock)."""
        for entry in self.path.parent.glob(f".{glob.escape(self.path.name)}.staging-*"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)

    def stage(self) -> Path:
        """A folder beside the run folder (on its file system) for files a new run writes before it is
        known to start (the language model's encoded corpus). :meth:`commit` moves what it holds into
        the run folder, ``data/`` recorded in the manifest; a run that fails first leaves nothing."""
        if self.staged is None:
            name = f".{self.path.name}.staging-"
            self.staged = Path(tempfile.mkdtemp(prefix=name, dir=self.path.parent))
        return self.staged

    def commit(self) -> None:
        """Make the folder this new run's: empty it when it is replaced, write its first manifest (with
        records of the staged ``data/`` files, see :func:`rnnkit.train.checkpoint.record_file`), then
        move the staged files in. Once only; nothing on resume or on a rank other than 0."""
        if self.rank != 0 or self.resume or self.committed:
            return
        data = {}
        if self.staged is not None and (self.staged / "data").is_dir():
            data = {path.name: record_file(path) for path in sorted((self.staged / "data").iterdir())}
        if self._replace:
            # the manifest last: a replacement stopped half-way still holds it, so --force still works
            for entry in sorted(self.path.iterdir(), key=lambda e: e.name == MANIFEST):
                if entry.name == LOCK_FILE:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        write_manifest(self.path, {"checkpoints": {}, **({"data": data} if data else {})})
        self.committed = True
        if self.staged is not None:
            for entry in sorted(self.staged.iterdir()):
                os.replace(entry, self.path / entry.name)
