"""``metrics.jsonl``: one JSON line per logged step or evaluation, appended crash-safely."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rnnkit.train import checkpoint as ckpt


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
