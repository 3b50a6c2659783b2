"""The contract between a task and the one trainer: what a task must give, and the defaults of the rest.

Every task class names :class:`Task` as its base (torchtitan's ``TrainSpec`` and Lightning's hooks are
the models: a declared contract whose optional parts have their defaults stated here, in one place).
The trainer reads these attributes directly; it never probes a task with ``getattr``.

A task must implement :meth:`Task.next_batch`, :meth:`Task.training_loss`, :meth:`Task.evaluate` and
:meth:`Task.checkpoint_config`; everything else has a default.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

EXPLODE_FACTOR = 3.0
"""Stop when the loss passes this multiple of the first one, as char-rnn's train.lua does."""


class Task:
    """What a task gives the trainer."""

    selection: ClassVar[tuple[str, str]] = ("val_loss", "min")
    """The validation metric that picks the best checkpoint, and whether lower or higher is better."""
    explode_factor: ClassVar[float | None] = EXPLODE_FACTOR
    """A loss above this multiple of the first stops training (None: only NaN/inf stop it)."""
    carry_batch_dim: ClassVar[int] = 1
    """The batch dimension of the carried state's tensors (DDP gathers every rank's rows along it)."""
    unit: ClassVar[str] = "samples"
    """What the count :meth:`training_loss` returns counts: the progress bar's speed is in units/s."""

    def next_batch(self) -> tuple[Any, bool]:
        """The next training batch, and whether it starts a new pass (the carry is reset then)."""
        raise NotImplementedError

    def training_loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, Any, int]:
        """Mean loss over the batch's targets, the carry for the next batch, and how many :attr:`unit`
        the batch held."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics; the one :attr:`selection` names picks the best checkpoint."""
        raise NotImplementedError

    def checkpoint_config(self) -> dict:
        """The ``config.json`` of every checkpoint: enough to rebuild the model without other files."""
        raise NotImplementedError

    def data_state(self) -> dict:
        """Where the data stream stands, as JSON (saved with every checkpoint)."""
        return {}

    def load_data_state(self, state: dict) -> None:
        """Go back to where :meth:`data_state` said the stream stood."""

    def make_carry(self, parts: list[Tensor]) -> Any:
        """The carried state from its saved tensors (a tuple by default; the language model's is an
        ``LSTMState``)."""
        return tuple(parts)

    def on_evaluate(self, model: nn.Module, step: int) -> None:
        """Called after each evaluation, in eval mode (the language model prints a sample here)."""
