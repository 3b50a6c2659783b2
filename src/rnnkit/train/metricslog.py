"""Where a run's numbers go: ``metrics.jsonl`` (one JSON line per logged step or evaluation, appended
crash-safely) and, with ``--tensorboard``, the same numbers in TensorBoard's event files. The trainer
records through one :class:`MetricsSink`, so the two never disagree."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from rnnkit.train import checkpoint as ckpt
from rnnkit.train.tensorboard import TENSORBOARD_DIR, TensorBoardLog


def append_metrics(run_dir: Path, record: dict) -> None:
    """Append one line to metrics.jsonl, flushed and fsynced (a torn last line is ignored on read)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)  # never through a link
    with open(os.open(Path(run_dir) / ckpt.METRICS_FILE, flags, 0o644), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def trim_metrics(run_dir: Path, step: int) -> None:
    """Drop the records logged after ``step`` (a resumed run trains those steps again)."""
    path = Path(run_dir) / ckpt.METRICS_FILE
    if not path.is_file():
        return
    kept = [json.dumps(r) + "\n" for r in ckpt.read_metrics(run_dir) if r.get("step", 0) <= step]
    ckpt.atomic_write(path, "".join(kept).encode("utf-8"))


class MetricsSink:
    """The one place a run's records go: each to ``metrics.jsonl``, and with ``tensorboard`` its numbers
    to ``run_dir/tensorboard/`` as ``group/key`` scalars at its step (``group``: ``train`` for the
    training records, ``val`` for the evaluations). A run that goes on from ``step`` (a resume, a
    rollback) starts its event file there (see :meth:`restart`). Use it as a context manager, or
    :meth:`close` it: the event files are flushed and closed on any exit, Ctrl-C and crashes included."""

    def __init__(self, run_dir: Path, *, tensorboard: bool = False, step: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.tensorboard = tensorboard
        self.board: TensorBoardLog | None = None
        self.restart(step)

    def restart(self, step: int) -> None:
        """Go on after ``step``: a new event file that hides what was logged after ``step`` before
        (TensorBoard's ``purge_step``), so the curves do not double back. ``metrics.jsonl`` is trimmed
        by :func:`trim_metrics` on resume."""
        self.close()
        if self.tensorboard:
            self.board = TensorBoardLog(self.run_dir / TENSORBOARD_DIR, purge_step=step + 1 if step else None)

    def record(self, record: dict, group: str) -> None:
        """One record (with its ``step``) of ``group``: a line of metrics.jsonl, and its scalars."""
        append_metrics(self.run_dir, record)
        if self.board is not None:
            self.board.scalars(group, record)

    def texts(self, texts: Mapping[str, str], step: int) -> None:
        """Texts by tag at ``step`` (the char-RNN's sample); TensorBoard only."""
        if self.board is not None:
            self.board.texts(texts, step)

    def flush(self) -> None:
        if self.board is not None:
            self.board.flush()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
            self.board = None

    def __enter__(self) -> MetricsSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
