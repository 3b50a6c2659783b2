"""The optimizer side of training: AdamW with decay on matrices only, the learning-rate schedule and
weight averaging."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor, nn

from rnnkit.train.config import TrainConfig


def lr_factor(config: TrainConfig, step: int, progress: float) -> float:
    """Multiplier of the peak learning rate: linear warm-up, then the decay over ``progress`` in [0, 1]."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    low = config.min_lr_ratio
    progress = min(max(progress, 0.0), 1.0)
    if config.schedule == "cosine":
        return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))
    if config.schedule == "linear":
        return 1 - (1 - low) * progress
    return 1.0


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not on biases or embeddings)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.dim() >= 2 and "embedding" not in name else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), foreach=True)


class WeightAverage:
    """An exponential moving average of a model's floating-point parameters (Polyak averaging).

    After ``n`` updates the decay is ``min(decay, (1 + n) / (10 + n))``, so the first weights, far from
    any minimum, are forgotten fast (as TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``).
    Buffers (batch-norm statistics) are not averaged: the saved model keeps them as trained.
    """

    RAW = "ema.raw."
    """The prefix of the raw (trained) weights in a checkpoint's state (model.safetensors: the average)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        named = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for shadow, param in zip(self.shadow, self.params, strict=True):
            shadow.lerp_(param, 1 - decay)

    @contextlib.contextmanager
    def applied(self):
        """Inside the block the model holds the averaged weights; its own again after."""
        raw = [p.detach().clone() for p in self.params]
        _copy_into(self.params, self.shadow)
        try:
            yield
        finally:
            _copy_into(self.params, raw)

    def raw_tensors(self) -> dict[str, Tensor]:
        return {self.RAW + n: p.detach().clone() for n, p in zip(self.names, self.params, strict=True)}

    @torch.no_grad()
    def restart(self, tensors: dict[str, Tensor], updates: int) -> None:
        """After the model was loaded with a checkpoint's (averaged) weights: they become the average,
        and the raw weights saved beside them (when there are any) go back into the model."""
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = updates
        for name, param in zip(self.names, self.params, strict=True):
            if self.RAW + name in tensors:
                param.copy_(tensors[self.RAW + name])


@torch.no_grad()
def _copy_into(params: list[nn.Parameter], values: list[Tensor]) -> None:
    """Write ``values`` into the parameters in place: the optimizer (and DDP) hold these very tensors."""
    for param, value in zip(params, values, strict=True):
        param.copy_(value)


def optimizer_tensors(state: dict) -> tuple[dict[str, Tensor], dict[str, dict]]:
    """An optimizer's ``state_dict()["state"]`` as named tensors (``optim.I.KEY``, for safetensors) and
    the scalars beside them (for JSON)."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, scalars


def load_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], saved: dict, device: torch.device
) -> None:
    """Give ``optimizer`` back the state :func:`optimizer_tensors` saved (``saved``: the JSON part, with
    ``scalars`` and ``param_groups``)."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value.to(device)
    for index, values in saved.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
