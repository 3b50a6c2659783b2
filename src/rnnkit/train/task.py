"""The contract between a task and the one engine: what a task must give, and the defaults of the rest.

Every task class names :class:`Task` as its base (torchtitan's ``TrainSpec`` and Lightning's hooks are
the models: a declared contract whose optional parts have their defaults stated here, in one place).
The trainer reads these attributes directly; it never probes a task with ``getattr``.

A task must set :attr:`Task.name` and :attr:`Task.config` and implement :meth:`Task.next_batch`,
:meth:`Task.training_loss` and :meth:`Task.evaluate`; everything else has a default. A task is
registered with a :class:`TaskSpec`, which :func:`rnnkit.train.run.run` trains and
:func:`rnnkit.tasks.load_run` loads.

Under DDP every rank holds the same task and draws the same global batch (the same seed, the same
data position); :meth:`Task.shard` keeps this rank's rows of it and :meth:`Task.share` scales this
rank's mean loss so that DDP's average over the ranks is the global batch's mean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from torch import Tensor, nn

EXPLODE_FACTOR = 3.0
"""Stop when the loss passes this multiple of the first one, as char-rnn's train.lua does."""

Row = TypeVar("Row")


class Task:
    """What a task gives the trainer."""

    name: ClassVar[str] = ""
    """The task's name in the registry; every checkpoint's ``config.json`` records it as ``task``."""
    config: Any
    """The task's whole config (a dataclass with a ``train`` section); saved with every checkpoint."""
    selection: ClassVar[tuple[str, str]] = ("val_loss", "min")
    """The validation metric that picks the best checkpoint, and whether lower or higher is better."""
    explode_factor: ClassVar[float | None] = EXPLODE_FACTOR
    """A loss above this multiple of the first stops training (None: only NaN/inf stop it)."""
    carry_batch_dim: ClassVar[int] = 1
    """The batch dimension of the carried state's tensors (DDP gathers every rank's rows along it)."""
    unused_parameters: ClassVar[bool] = False
    """Whether some of the model's parameters take no part in a training step (the classifier's head
    during language-model pre-training): DDP must then look for them every step."""
    unit: ClassVar[str] = "samples"
    """What the count :meth:`training_loss` returns counts: the progress bar's speed is in units/s."""
    rank: int = 0
    """This process's rank under DDP (set by the runner before training)."""
    world_size: int = 1
    """How many processes train together (1 outside ``torchrun``)."""

    def next_batch(self) -> tuple[Any, bool]:
        """The next training batch (tensors, on the CPU: the trainer moves them to its device), and
        whether it starts a new pass (the carry is reset then)."""
        raise NotImplementedError

    def training_loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, Any, int]:
        """Mean loss over the batch's targets, the carry for the next batch, and how many :attr:`unit`
        the batch held."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics; the one :attr:`selection` names picks the best checkpoint."""
        raise NotImplementedError

    def checkpoint_extras(self) -> dict:
        """What ``config.json`` holds beside ``format_version``, ``task`` and ``config`` (which the
        trainer writes): the vocabulary, scaling statistics... enough to rebuild the model."""
        return {}

    def data_state(self) -> dict:
        """Where the data stream stands, as JSON (saved with every checkpoint)."""
        return {}

    def load_data_state(self, state: dict) -> None:
        """Go back to where :meth:`data_state` said the stream stood."""

    def make_carry(self, parts: list[Tensor]) -> Any:
        """The carried state from its saved tensors (a tuple by default; the language model's is an
        ``LSTMState``)."""
        return tuple(parts)

    def on_evaluate(self, model: nn.Module, step: int) -> Mapping[str, str] | None:
        """Called after each evaluation, in eval mode (the language model prints a sample here). Texts it
        returns (name -> text) are recorded by the trainer beside the scalars (TensorBoard)."""

    def stages(self, model: nn.Module) -> list[Stage]:
        """The trainings of one run, in order: by default one, this task on ``model`` with its config's
        ``train`` section, in the run folder. The classifier puts a language-model pre-training first,
        in a folder of its own; a resumed run goes on in the stage it stopped in."""
        return [Stage(model, self, self.config.train)]

    def describe_model(self) -> str:
        """A few words on the model for the start line (``lstm 2x512``); empty by default."""
        return ""

    # DDP ------------------------------------------------------------------------------------------

    def shard(self, rows: Sequence[Row]) -> list[Row]:
        """This rank's rows of a global batch (every row in one process)."""
        return list(rows[self.rank :: self.world_size])

    def share(self, local: float, total: float) -> float:
        """The factor for this rank's mean loss over ``local`` units of a global batch of ``total``:
        DDP averages the ranks' gradients, and with this factor that average is the gradient of the
        global batch's mean. Exactly 1.0 in one process."""
        if self.world_size == 1:
            return 1.0
        return self.world_size * local / max(total, 1e-12)


@dataclass(frozen=True)
class Stage:
    """One training of a run (see :meth:`Task.stages`)."""

    model: nn.Module
    task: Task
    train: Any
    """Its :class:`rnnkit.train.config.TrainConfig` (budget, intervals...)."""
    folder: str = ""
    """Where its checkpoints go: the run folder (""), or a subfolder named in ``checkpoint.STAGES``."""
    note: str = ""
    """Logged as the stage starts."""


@dataclass(frozen=True)
class Setup:
    """What the runner hands a task's :attr:`TaskSpec.prepare`."""

    out: Path
    """The run folder."""
    resumed: Any
    """On ``--resume``, the last checkpoint (:class:`rnnkit.train.checkpoint.Checkpoint`) of the stage
    the run stopped in, else None: the vocabulary and statistics come from it then, not from the data."""
    folder: Any
    """The :class:`rnnkit.train.rundir.RunFolder`; files a task writes before the run starts (the
    language model's encoded corpus) go to ``folder.stage()`` and move in when the runner commits."""
    rank: int = 0
    world_size: int = 1


TaskT = TypeVar("TaskT", bound=Task)


@dataclass(frozen=True)
class TaskSpec(Generic[TaskT]):
    """A task as the registry knows it: how to train it (with :func:`rnnkit.train.run.run`) and how
    to load a trained run of it (with :func:`rnnkit.tasks.load_run`). Generic in the task class that
    :attr:`prepare` returns, so a type checker reads :attr:`build_model`'s argument as that class."""

    name: str
    config: type
    """The config dataclass (with a ``train`` section, a :class:`rnnkit.train.config.TrainConfig`)."""
    prepare: Callable[[Any, Setup], TaskT]
    """The data step: read and split the data, build (or on resume read back) the vocabulary, and
    return the task, which knows enough to build the model."""
    build_model: Callable[[TaskT], nn.Module]
    """The model for a prepared task (built on the meta device first and checked, see train/build.py)."""
    load: Callable[..., Any]
    """``(run_dir, which="best", device="cpu")`` -> the loaded model, :attr:`loaded`."""
    loaded: type
    """The loaded-model class: what ``rnnkit.load`` returns for a run of this task."""
    train: Callable[..., dict] | None = None
    """A task whose command trains more than one run (the classifier's ensembles) gives its own entry
    here; it calls :func:`rnnkit.train.run.run` for each. None: ``run`` itself."""
