"""What several command groups share: the option types declared once, logging, and the generic
train-a-task helper with its next steps."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from rnnkit.errors import DataError, UsageError
from rnnkit.train.rundir import refuse_if_busy

log = logging.getLogger("rnnkit")


class _ConsoleHandler(logging.Handler):
    """Log lines through the rich stderr console: they print above a live progress bar, unwrapped."""

    def emit(self, record: logging.LogRecord) -> None:
        from rnnkit.console import stderr

        try:
            stderr.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _setup_logging(quiet: bool = False) -> None:
    handler = _ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler], force=True)


Opt = typer.Option

# options that several commands take, declared once
ForceOpt = Annotated[bool, Opt(help="Replace an existing run folder.")]
CellOpt = Annotated[str | None, Opt(help="lstm, gru or rnn.")]
DropoutOpt = Annotated[float | None, Opt(help="Dropout probability.")]
LrOpt = Annotated[float | None, Opt(help="Peak learning rate (AdamW).")]
MaxStepsOpt = Annotated[int | None, Opt(help="Stop after this many steps (0: no limit).")]
ThreadsOpt = Annotated[int | None, Opt(help="CPU threads (0: torch's default).")]
CheckpointOpt = Annotated[str, Opt(help="best or last.")]
TrustBackboneOpt = Annotated[
    str,
    Opt(
        "--backbone",
        help="The external backbone (package.module:factory) the run was trained with: a run folder never "
        "names code that loading imports, so you name it yourself, and only if you trust it.",
    ),
]
EncodingOpt = Annotated[str, Opt(help="Text encoding of the files.")]
OutOpt = Annotated[Path | None, Opt("--out", "-o", help="Run folder.")]
NumLayersOpt = Annotated[int | None, Opt(help="Stacked layers.")]


def minutes_opt(default: float) -> Any:
    """``--max-minutes`` of a task's train command, its default (the task config's) in the help;
    tests/test_first_hour.py checks each against the config."""
    return Annotated[
        float | None,
        Opt(
            help=f"Stop after this many minutes of training (0: no limit; default {default:g}). On --resume, "
            "the run's total, not extra time.",
            show_default=False,
        ),
    ]


EvalIntervalOpt = Annotated[int | None, Opt(help="Evaluate and checkpoint every N steps.")]
SeedOpt = Annotated[int | None, Opt(help="Random seed.")]
ResumeOpt = Annotated[Path | None, Opt(help="Continue this run folder.")]
QuietOpt = Annotated[bool, Opt("--quiet", "-q", help="Warnings only.")]


def _train_task(
    flags: dict,
    set_: list[str] | None,
    *,
    data: Path | None,
    out: Path | None,
    resume: Path | None,
    force: bool,
    quiet: bool,
    saved: Callable[[Path], Any],
    fresh: Callable[[], Any],
    base: dict,
    missing: str,
    name: str,
    report: Callable[[dict], str],
) -> None:
    """New run or ``--resume``: build the config from the flags, train (each rank under ``torchrun``),
    report; exit 130 when stopped."""
    from rnnkit.config import override
    from rnnkit.tasks import TASKS
    from rnnkit.train.distributed import from_environment
    from rnnkit.train.run import train

    assignments = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None] + list(set_ or [])
    if resume is not None:
        if data is not None or (out is not None and out != resume):
            raise UsageError("--resume: give the run folder only, no DATA or other --out")
        refuse_if_busy(resume)
        config = override(saved(resume), assignments)
        target = resume
    else:
        if data is None or any(v is None for v in base.values()):
            raise UsageError(missing)
        config = override(fresh(), [f"{k}={json.dumps(v)}" for k, v in base.items()] + assignments)
        target = out if out is not None else Path("runs") / f"{name}-{data.stem}"
    with from_environment(config.train.device) as place:
        if place.world_size > 1:
            config = override(config, [f"train.device={json.dumps(place.device)}"])
            if place.rank:
                _setup_logging(quiet=True)  # rank 0 speaks for the group
        progress = not quiet and sys.stderr.isatty() and place.rank == 0
        resuming = resume is not None
        summary = train(TASKS[name], config, target, force=force, resume=resuming, progress=progress)
    if place.rank:
        return
    log.log(logging.WARNING if quiet else logging.INFO, "%s; saved in %s", report(summary), target)
    if summary.get("stopped") not in (None, "done"):
        raise typer.Exit(130)
    log.info("next: %s", NEXT_STEPS[name].format(run=target))


NEXT_STEPS = {
    "classify": "rnnkit classify eval {run} TEST.csv   (echo 'some text' | rnnkit classify predict {run})",
    "tag": "rnnkit tag eval {run} TEST_FILE   (echo 'some text' | rnnkit tag predict {run})",
    "forecast": "rnnkit forecast eval {run}   (the test span against the naive baselines, and a plot)",
    "speech": "rnnkit speech eval {run} WAV_FOLDER   (rnnkit speech transcribe {run} FILE.wav)",
    "caption": "rnnkit caption eval {run} IMAGES CAPTIONS.csv   (rnnkit caption predict {run} PICTURE)",
}
"""What to run after each task's ``train`` (the language model's is in :func:`train`)."""


def _budget_flags(batch_size, lr, max_steps, max_minutes, eval_interval, seed, device=None, threads=None):
    """The training flags every task's train command has, as dotted config keys (None: keep the default)."""
    return {
        "train.batch_size": batch_size,
        "train.lr": lr,
        "train.max_steps": max_steps,
        "train.max_minutes": max_minutes,
        "train.eval_interval": eval_interval,
        "train.checkpoint_interval": eval_interval,
        "train.seed": seed,
        "train.device": device,
        "train.threads": threads,
    }


def _read_lines(files: list[Path] | None, encoding: str) -> list[str]:
    """The non-empty lines of the files (``-`` or none: standard input), stripped."""
    from rnnkit.data.files import read_text_file

    lines: list[str] = []
    for path in files or [Path("-")]:
        text = sys.stdin.read() if str(path) == "-" else read_text_file(path, encoding)
        lines += [line.strip() for line in text.split("\n") if line.strip()]
    if not lines:
        raise DataError("no text given (empty input)")
    return lines
