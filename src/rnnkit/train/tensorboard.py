"""TensorBoard event files for a run (on where the package is installed; ``--tensorboard`` asks for them,
``--no-tensorboard`` turns them off).

What goes in ``RUN_DIR/tensorboard/`` (a stage of its own, the classifier's ``pretrain/``, has its own):

- every number of every ``metrics.jsonl`` record, as a scalar at the record's step, tagged by its key
  under the record's group: ``train/train_loss``, ``train/lr``, ``train/tokens_per_s``... for the
  training records, ``val/val_loss``, ``val/accuracy``... for the evaluations;
- the texts a task hands back after an evaluation (the char-RNN's sample, tag ``sample``), as a
  Markdown code block, so that line breaks show as written.

Open it with ``tensorboard --logdir runs/`` (every run below ``runs/`` appears by its folder name).
:class:`torch.utils.tensorboard.SummaryWriter` writes from a thread of its own: a record costs a queue
put, never a disk write in the training loop. A resumed run goes on in the same folder with
``purge_step`` one past its checkpoint's step, so that TensorBoard drops what the stopped run logged
after that checkpoint (those steps are trained again) and the curves never double back.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rnnkit.errors import UsageError
from rnnkit.train.rundir import no_symlink

TENSORBOARD_DIR = "tensorboard"
"""The folder of a run folder that holds the event files."""


def scalars_of(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a ``metrics.jsonl`` record by key, but its ``step`` (that is where they go)."""
    return {
        key: float(value)
        for key, value in record.items()
        if key != "step" and isinstance(value, int | float) and not isinstance(value, bool)
    }


def as_markdown(text: str) -> str:
    """``text`` as a Markdown code block (TensorBoard renders text as Markdown, which joins lines):
    each line indented by four spaces, which no fence in the text can close."""
    return "\n".join("    " + line for line in text.split("\n"))


def tensorboard_available() -> bool:
    """Whether torch's TensorBoard writer can be imported (the ``rnnkit[tensorboard]`` extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLog:
    """One run's event files in ``folder``; ``purge_step``: hide what an earlier writer logged at this
    step or later (a resumed run trains those steps again)."""

    def __init__(self, folder: Path, *, purge_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UsageError(
                "--tensorboard: the tensorboard package is not installed; install it (pip install "
                "'rnnkit[tensorboard]') or train with --no-tensorboard"
            ) from None
        self.folder = no_symlink(Path(folder))
        self.writer = SummaryWriter(str(self.folder), purge_step=purge_step)

    def scalars(self, group: str, record: Mapping[str, Any]) -> None:
        """Each number of ``record`` as ``group/key`` at ``record["step"]``."""
        step = int(record["step"])
        for key, value in scalars_of(record).items():
            self.writer.add_scalar(f"{group}/{key}", value, global_step=step)

    def texts(self, texts: Mapping[str, str], step: int) -> None:
        for tag, text in texts.items():
            self.writer.add_text(tag, as_markdown(text), global_step=step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
