"""``TrainConfig``: every setting of the training engine, with its meaning and its check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

PRECISIONS = ("auto", "fp32", "bf16")
SCHEDULES = ("cosine", "linear", "constant")


@dataclass(kw_only=True)
class TrainConfig:
    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ("seq_len", "eval_tokens", "sample_length")
    """Keys that runs saved before the language model's settings left this section still hold; read
    and dropped (the language model's own section, :class:`rnnkit.tasks.lm.LMTrainConfig`, has them)."""

    batch_size: int = 32
    """Sequences per batch (parallel streams for truncated BPTT)."""
    lr: float = 2e-3
    """Peak learning rate of AdamW."""
    min_lr_ratio: float = 0.1
    """The learning rate decays to lr * min_lr_ratio at the end of the schedule."""
    schedule: str = "cosine"
    """Decay after warm-up: cosine, linear or constant."""
    warmup_steps: int = 100
    """Linear warm-up from 0 to lr over this many steps."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay (matrices only; biases, norms and embeddings are left alone)."""
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 5.0
    """Clip the global gradient norm to this; 0 turns clipping off."""
    ema: float = 0.0
    """Keep an exponential moving average of the weights with this decay per step (e.g. 0.998: a time
    constant of 500 steps); evaluation, the best checkpoint and every saved model use the average, and
    training goes on from the raw weights. 0: off. (Polyak averaging, as in SWA and most image models.)"""
    max_steps: int = 0
    """Stop after this many optimizer steps; 0 means no step limit (then max_minutes must be set)."""
    max_minutes: float = 0.0
    """Stop after this much training time; 0 means no time limit. With it, a cosine or linear schedule
    follows elapsed time when max_steps is 0 (not deterministic across machines)."""
    eval_interval: int = 200
    """Evaluate on the validation split every this many steps (and at the end)."""
    checkpoint_interval: int = 500
    """Write the last checkpoint every this many steps (and at every evaluation and at the end)."""
    log_interval: int = 50
    """Write a metrics.jsonl line every this many steps."""
    seed: int = 1337
    precision: str = "auto"
    """fp32, bf16 (autocast), or auto: bf16 where the hardware runs it natively (AMX CPUs, recent GPUs)."""
    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (cuda when available)."""
    threads: int = 0
    """CPU threads for torch (0: torch's default)."""
    on_nan: str = "abort"
    """When the loss becomes NaN/inf or explodes: abort (keep the last good checkpoint) or rollback
    (reload it, halve the learning rate and go on)."""

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
