"""What a training shows while it runs: the budget line, a rich progress bar on a terminal, and
without one a plain heartbeat line every HEARTBEAT_SECONDS."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from rnnkit.train.config import TrainConfig

if TYPE_CHECKING:
    from rnnkit.train.trainer import Trainer

log = logging.getLogger("rnnkit")


def budget_fraction(c: TrainConfig, step: int, elapsed: float) -> float:
    """How much of the budget is used, in [0, 1] (steps when there is a step limit, else minutes)."""
    if c.max_steps:
        return step / c.max_steps
    if c.max_minutes:
        return elapsed / (60 * c.max_minutes)
    return 0.0


def budget_spent(c: TrainConfig, step: int, elapsed: float) -> bool:
    return bool((c.max_steps and step >= c.max_steps) or (c.max_minutes and elapsed >= 60 * c.max_minutes))


def where_now(step: int, elapsed: float) -> str:
    return f"; at step {step:,} after {elapsed / 60:.1f} minutes" if step else ""


def describe_budget(c: TrainConfig) -> str:
    """``at most 5 minutes`` / ``at most 2,000 steps or 10 minutes, whichever comes first``."""
    parts = ([f"{c.max_steps:,} steps"] if c.max_steps else []) + (
        [f"{c.max_minutes:g} minutes"] if c.max_minutes else []
    )
    return "at most " + " or ".join(parts) + (", whichever comes first" if len(parts) > 1 else "")


class Bar:
    """A rich progress bar over steps (or over seconds when only --max-minutes is set)."""

    def __init__(self, trainer: Trainer) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from rnnkit.console import stderr

        self.trainer = trainer
        c = trainer.config
        self.by_steps = bool(c.max_steps)
        total = c.max_steps if self.by_steps else 60 * c.max_minutes
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("step {task.fields[step]}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} " + trainer.task.unit + "/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=stderr,
            transient=False,
        )
        # nothing is known before the first step: a dash, never a nan that reads as divergence
        self.task_id = self.progress.add_task("train", total=total, step=trainer.step, loss="-", speed="-")

    def __enter__(self) -> Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, loss: float, speed: float) -> None:
        t = self.trainer
        done = t.step if self.by_steps else t.elapsed
        self.progress.update(
            self.task_id, completed=done, step=t.step, loss=f"{loss:.3f}", speed=f"{speed:,.0f}"
        )


HEARTBEAT_SECONDS = 30.0


class Heartbeat:
    """Without a terminal (a log file, CI), a plain line every HEARTBEAT_SECONDS: step, loss, speed."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer, self.seconds = trainer, HEARTBEAT_SECONDS
        self.last = time.monotonic()

    def update(self, loss: float, speed: float) -> None:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return
        self.last = now
        t, c = self.trainer, self.trainer.config
        of = f" of {c.max_steps:,}" if c.max_steps else ""
        budget = f" of {c.max_minutes:g} min" if c.max_minutes else ""
        log.info(
            "step %s%s | loss %.3f | %s %s/s | %.1f min%s",
            f"{t.step:,}", of, loss, f"{speed:,.0f}", t.task.unit, t.elapsed / 60, budget,
        )  # fmt: skip
