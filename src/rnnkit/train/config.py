"""``TrainConfig``: every setting of the training engine, with its meaning and its check; and
:func:`flag`, which declares a field of any config a flag of its task's train command (the command
line finds them with :func:`declared_flags`)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

PRECISIONS = ("auto", "fp32", "bf16")
SCHEDULES = ("cosine", "linear", "constant")


def flag(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    name: str = "",
    factory: Callable[[], Any] | None = None,
    path: bool = False,
) -> Any:
    """A config field that is also a flag of its task's ``train`` command, declared once, here: the
    command line derives the option from the field (its name, type and default; see
    ``rnnkit.cli.options.config_flags``). ``help`` documents the field and is the flag's help; a
    ``{default}`` in it is replaced by the default. ``name`` declares the flag when it is not
    ``--field-name`` (``"--strict/--skip-binary"``); ``path`` reads a string field as a path. Every
    field, a flag or not, is also reached by ``--set section.field=value``."""
    if not help:
        raise TypeError("flag: a flag needs its help text")
    metadata = {"flag": name, "help": help, "path": path}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class Flag(NamedTuple):
    """A config field that is a flag: its dotted key, the flag (``--crf/--no-crf``), the field's type,
    the help, and whether a string field is read as a path."""

    key: str
    decls: str
    kind: Any
    help: str
    path: bool = False


def declared_flags(config: type, prefix: str = "") -> list[Flag]:
    """The fields of ``config`` and of its sections, at any depth, that are flags: declared by
    :func:`flag`, or, in a section whose class lives below this module, named by the section field's
    ``flags`` metadata (field name -> help)."""
    hints = typing.get_type_hints(config)
    found = []
    for field in dataclasses.fields(config):
        key, kind, meta = prefix + field.name, hints[field.name], field.metadata
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            found += declared_flags(kind, key + ".")
            inner = typing.get_type_hints(kind)
            found += [
                Flag(f"{key}.{n}", _decls(n, inner[n]), inner[n], h) for n, h in meta.get("flags", {}).items()
            ]
        elif "flag" in meta:
            found.append(
                Flag(key, meta["flag"] or _decls(field.name, kind), kind, meta["help"], meta["path"])
            )
    return found


def _decls(name: str, kind: Any) -> str:
    """A field's flag unless it declares its own: ``--field-name``, and ``--no-field-name`` for off."""
    option = "--" + name.replace("_", "-")
    return f"{option}/--no-{option[2:]}" if kind is bool else option


@dataclass(kw_only=True)
class TrainConfig:
    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ("seq_len", "eval_tokens", "sample_length")
    """Keys that runs saved before the language model's settings left this section still hold; read
    and dropped (the language model's own section, :class:`rnnkit.tasks.lm.LMTrainConfig`, has them)."""

    batch_size: int = flag(
        32,
        "Examples per batch: texts, sentences, windows, recordings or captions (the char-RNN: parallel "
        "streams of truncated BPTT).",
    )
    lr: float = flag(2e-3, "Peak learning rate (AdamW).")
    min_lr_ratio: float = 0.1
    """The learning rate decays to lr * min_lr_ratio at the end of the schedule."""
    schedule: str = flag("cosine", "cosine, linear or constant decay after warm-up.")
    warmup_steps: int = flag(100, "Linear warm-up from 0 to lr over this many steps.")
    weight_decay: float = flag(
        0.0, "AdamW's decoupled weight decay (matrices only; biases, norms and embeddings are left alone)."
    )
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = flag(5.0, "Clip the global gradient norm to this (0: off).")
    ema: float = flag(
        0.0,
        "Evaluate and save a moving average of the weights with this decay per step (0: off; 0.998: "
        "a time constant of 500 steps); training goes on from the raw weights (Polyak averaging).",
    )
    max_steps: int = flag(0, "Stop after this many optimizer steps (0: no limit; then --max-minutes).")
    max_minutes: float = flag(
        0.0,
        "Stop after this many minutes of training (0: no limit; {default}). On --resume, the run's "
        "total, not extra time. With --max-steps 0, a cosine or linear schedule follows the elapsed time.",
    )
    eval_interval: int = flag(
        200,
        "Evaluate on the validation split every N steps and at the end, and write a checkpoint (the "
        "char-RNN also prints a sample).",
    )
    checkpoint_interval: int = flag(
        500, "Write the last checkpoint every N steps too (a task's --eval-interval sets it as well)."
    )
    log_interval: int = 50
    """Write a metrics.jsonl line every this many steps."""
    seed: int = flag(1337, "Random seed (weights, dropout, data order, samples).")
    precision: str = flag(
        "auto",
        "fp32, bf16 (autocast), or auto: bf16 where the hardware runs it natively (AMX CPUs, recent GPUs).",
    )
    device: str = flag("auto", "cpu, cuda, cuda:N, or auto (cuda when available).")
    threads: int = flag(0, "CPU threads for torch (0: torch's default).")
    on_nan: str = flag(
        "abort",
        "When the loss becomes NaN/inf or explodes: abort (keep the last good checkpoint) or "
        "rollback (reload it, halve the learning rate and go on).",
    )
    tensorboard: bool | None = flag(
        None,
        "Write TensorBoard event files into RUN_DIR/tensorboard/ (the numbers of metrics.jsonl at the "
        "same steps, and the char-RNN's samples); on by default where the tensorboard package is "
        "installed, off without it; --tensorboard without the package is an error. Watch with: "
        "tensorboard --logdir runs/",
        name="--tensorboard/--no-tensorboard",
    )
    """``None`` (the default): on where the package is installed, decided when training starts (so a
    saved config does not pin what one machine had); ``True``: asked for, an error without the
    package; ``False``: off."""

    def __post_init__(self) -> None:
        positive = ("batch_size", "eval_interval", "checkpoint_interval", "log_interval")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        for name in ("max_steps", "warmup_steps", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected 0 or more, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected a positive learning rate, got {self.lr}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema: expected a decay in [0, 1) (0: off), got {self.ema}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio: expected a value in [0, 1], got {self.min_lr_ratio}")
        if self.max_minutes < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("max_minutes, grad_clip, weight_decay: expected 0 or more")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("beta1, beta2: expected values in [0, 1)")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.on_nan not in ("abort", "rollback"):
            raise ValueError(f"on_nan: expected abort or rollback, got {self.on_nan!r}")


def task_training(
    *, batch_size: int, warmup_steps: int, eval_interval: int, **more: Any
) -> Callable[[], TrainConfig]:
    """The default factory of a task's training section: no text samples, AdamW 2e-3 with weight decay
    0.01 for 10 minutes, a checkpoint at every evaluation; ``more`` sets any other field."""
    values = {
        "batch_size": batch_size, "lr": 2e-3, "warmup_steps": warmup_steps, "eval_interval": eval_interval,
        "checkpoint_interval": eval_interval, "max_minutes": 10.0, "weight_decay": 0.01,
        "log_interval": 50,
    } | more  # fmt: skip
    return lambda: TrainConfig(**values)
