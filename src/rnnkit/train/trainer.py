"""The one training engine every task uses: loop, truncated BPTT carry, AMP, clipping, schedule,
evaluation, checkpoints, metrics, signals and divergence handling.

The trainer knows nothing of any task. A task (see :class:`Task`) hands it batches, a loss and an
evaluation; the trainer hands back checkpoints and metrics. All state that a resume needs lives on the
trainer and goes through :meth:`Trainer.state_dict` / :meth:`Trainer.load_state_dict`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.config import to_dict
from rnnkit.errors import TrainingError
from rnnkit.train import checkpoint as ckpt
from rnnkit.train.config import TrainConfig
from rnnkit.train.task import Task

log = logging.getLogger("rnnkit")
MAX_ROLLBACKS = 5


# -------------------------------------------------------------------------------------------------
# helpers


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from rnnkit.errors import UsageError

        raise UsageError("--device: CUDA was asked for but no CUDA device is available")
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AMX or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` is bf16 where the hardware computes it natively, fp32 elsewhere.

    On a CPU without AVX512-BF16 or AMX, oneDNN has no bf16 LSTM kernel at all (the fused call fails),
    so an explicit ``bf16`` there is refused with a clear message rather than crashing mid-run.
    """
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    if name == "auto":
        return "bf16" if native else "fp32"
    if name == "bf16" and not native:
        from rnnkit.errors import UsageError

        where = "GPU" if device.type == "cuda" else "CPU (it lacks AVX512-BF16 and AMX)"
        raise UsageError(f"--precision bf16: this {where} has no native bf16 kernels; use fp32")
    return name


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def detach(carry: Any) -> Any:
    """Cut the graph at a truncated-BPTT boundary, keeping the values (tensors, tuples, None)."""
    if carry is None:
        return None
    if isinstance(carry, Tensor):
        return carry.detach()
    if isinstance(carry, tuple):
        items = [detach(c) for c in carry]
        return type(carry)(*items) if hasattr(carry, "_fields") else tuple(items)
    if isinstance(carry, list):
        return [detach(c) for c in carry]
    raise TypeError(f"carry: cannot detach a {type(carry).__name__}")


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch with every tensor in it on ``device`` (tuples, named tuples, lists and dicts walked)."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple):
        items = [to_device(b, device) for b in batch]
        return type(batch)(*items) if hasattr(batch, "_fields") else tuple(items)
    if isinstance(batch, list):
        return [to_device(b, device) for b in batch]
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _flatten_carry(carry: Any) -> dict[str, Tensor]:
    if carry is None:
        return {}
    parts = (carry,) if isinstance(carry, Tensor) else tuple(carry)
    return {f"carry.{i}": part for i, part in enumerate(parts)}


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
    decay, no_decay = [], []
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
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - decay)

    @contextlib.contextmanager
    def applied(self):
        """Inside the block the model holds the averaged weights; its own again after."""
        raw = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            torch._foreach_copy_([p.data for p in self.params], self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_([p.data for p in self.params], raw)

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


class _Signals:
    """Turn SIGINT/SIGTERM into a flag the loop checks between steps; restores handlers on exit."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


# -------------------------------------------------------------------------------------------------


class Trainer:
    """Trains ``model`` on ``task`` into ``run_dir``; resumable, crash-safe, task-agnostic.

    Args:
        model: the model, on the CPU; the trainer moves it to ``config.device``.
        task: see :class:`Task`.
        config: a :class:`TrainConfig`.
        run_dir: where checkpoints and ``metrics.jsonl`` go. ``None`` writes nothing (for tests).
        rank, world_size: set under DDP; only rank 0 writes.
        progress: ``True`` shows a rich progress bar on the terminal.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        config: TrainConfig,
        run_dir: Path | None = None,
        *,
        rank: int = 0,
        world_size: int = 1,
        progress: bool = False,
        on_step: Callable[[Trainer], None] | None = None,
    ) -> None:
        self.config = config
        self.task = task
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.rank, self.world_size = rank, world_size
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.model = model.to(self.device)
        self.wrapped: nn.Module = self.model  # what the task's forward pass calls; DDP under torchrun
        if world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(  # broadcasts rank 0's weights
                self.model, device_ids=ids, find_unused_parameters=task.unused_parameters
            )
            torch.manual_seed(config.seed * 1_000_003 + rank)  # dropout masks differ between ranks
        self.optimizer = make_optimizer(self.model, config)
        self.average = WeightAverage(self.model, config.ema) if config.ema else None
        self.progress = progress
        self.on_step = on_step
        # everything below is resume state
        self.step = 0
        self.tokens_seen = 0
        self.elapsed = 0.0  # seconds of training, evaluation and checkpoints excluded
        self.best_val = math.inf
        self.first_loss: float | None = None
        self.lr_scale = 1.0
        self.rollbacks = 0
        self.carry: Any = None
        self.last_eval: dict[str, float] = {}

    # ---------------------------------------------------------------------------------------------
    # state

    def state_dict(self) -> tuple[dict[str, Tensor], dict]:
        """Resume state: tensors (optimizer, carried hidden state, RNG) and JSON (everything else)."""
        opt = self.optimizer.state_dict()
        tensors: dict[str, Tensor] = {}
        scalars: dict[str, dict] = {}
        for index, state in opt["state"].items():
            for key, value in state.items():
                if isinstance(value, Tensor):
                    tensors[f"optim.{index}.{key}"] = value
                else:
                    scalars.setdefault(str(index), {})[key] = value
        tensors.update(self._gather(_flatten_carry(self.carry), dim=self.task.carry_batch_dim))
        tensors["rng.torch"] = torch.get_rng_state()
        if self.world_size > 1:
            for r, state in enumerate(self._all_gather(torch.get_rng_state())):
                tensors[f"rng.torch.rank{r}"] = state
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        if self.average is not None:
            tensors.update(self.average.raw_tensors())
        meta = {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "elapsed": self.elapsed,
            "best_val": None if math.isinf(self.best_val) else self.best_val,
            "first_loss": self.first_loss,
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
            "carry": None
            if self.carry is None
            else ("tensor" if isinstance(self.carry, Tensor) else "tuple"),
            "carry_parts": len(_flatten_carry(self.carry)),
            "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars},
            "data": self.task.data_state(),
            "precision": self.precision,
            "world_size": self.world_size,
            "ema_updates": None if self.average is None else self.average.updates,
        }
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, Tensor], meta: dict) -> None:
        opt_state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                opt_state.setdefault(int(index), {})[name] = value.to(self.device)
        for index, values in meta["optimizer"].get("scalars", {}).items():
            opt_state.setdefault(int(index), {}).update(values)
        self.optimizer.load_state_dict(
            {"state": opt_state, "param_groups": meta["optimizer"]["param_groups"]}
        )
        saved_world = int(meta.get("world_size", 1))
        if saved_world != self.world_size:
            from rnnkit.errors import UsageError

            raise UsageError(
                f"this run was trained with {saved_world} process(es); resume it with the same number "
                f"(torchrun --nproc-per-node {saved_world}), not {self.world_size}"
            )
        dim = self.task.carry_batch_dim
        parts = [
            tensors[f"carry.{i}"].chunk(self.world_size, dim=dim)[self.rank].contiguous().to(self.device)
            for i in range(meta.get("carry_parts", 0))
        ]
        if meta.get("carry") == "tensor":
            self.carry = parts[0]
        elif meta.get("carry") == "tuple":
            self.carry = self.task.make_carry(parts)
        else:
            self.carry = None
        torch.set_rng_state(tensors.get(f"rng.torch.rank{self.rank}", tensors["rng.torch"]))
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.step = int(meta["step"])
        self.tokens_seen = int(meta["tokens_seen"])
        self.elapsed = float(meta["elapsed"])
        self.best_val = math.inf if meta["best_val"] is None else float(meta["best_val"])
        self.first_loss = meta["first_loss"]
        self.lr_scale = float(meta.get("lr_scale", 1.0))
        self.rollbacks = int(meta.get("rollbacks", 0))
        self.task.load_data_state(meta["data"])
        if self.average is not None:  # a run saved without averaging starts its average here
            self.average.restart(tensors, int(meta.get("ema_updates") or 0))

    def resume(self, which: str = "last") -> str:
        """Load model, optimizer, RNG, data position and counters from the run; the checkpoint's name."""
        assert self.run_dir is not None
        loaded = ckpt.load_checkpoint(self.run_dir, which, with_state=True)
        ckpt.load_weights(self.model, loaded)
        try:
            self.load_state_dict(loaded.state_tensors, loaded.trainer_state)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            # a state written by this trainer has every field; anything else was changed by hand
            raise ckpt.CheckpointError(
                f"{loaded.folder / ckpt.TRAINER_FILE}: not a trainer state this rnnkit wrote "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'malformed'})"
            ) from None
        return loaded.name

    # ---------------------------------------------------------------------------------------------
    # writing

    @property
    def writes(self) -> bool:
        return self.run_dir is not None and self.rank == 0

    def save(self, best: bool = False) -> str | None:
        """Write a checkpoint (rank 0); under DDP every rank must call it (it gathers their state). With
        ``ema`` the saved model is the average, and the raw weights go with the resume state."""
        if self.run_dir is None:
            return None
        tensors, meta = self.state_dict()
        name = None
        if self.rank == 0:
            with self.averaged():
                name = ckpt.save_checkpoint(
                    self.run_dir,
                    self.step,
                    model_state=self.model.state_dict(),
                    config=self.checkpoint_config(),
                    state_tensors=tensors,
                    trainer_state=meta,
                    best=best,
                )
        self._barrier()
        return name

    def checkpoint_config(self) -> dict:
        """Every checkpoint's ``config.json``: the format, the task, its whole config, and what the task
        adds to rebuild its model (vocabulary, statistics)."""
        task = self.task
        base = {"format_version": ckpt.FORMAT_VERSION, "task": task.name, "config": to_dict(task.config)}
        return base | task.checkpoint_extras()

    # ---------------------------------------------------------------------------------------------
    # DDP: the few collectives beyond DDP's own gradient all-reduce

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def _all_gather(self, tensor: Tensor) -> list[Tensor]:
        local = tensor.to(self._comm_device()).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, local)
        return [part.to(tensor.device) for part in parts]

    def _gather(self, tensors: dict[str, Tensor], dim: int) -> dict[str, Tensor]:
        """Join each rank's rows of the carried state, so a checkpoint holds the global batch's state."""
        if self.world_size == 1:
            return tensors
        return {key: torch.cat(self._all_gather(t), dim=dim) for key, t in tensors.items()}

    def _agree(self, *values: float) -> list[float]:
        """The mean of each value over the ranks: every rank then takes the same decisions."""
        if self.world_size == 1:
            return list(values)
        packed = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        torch.distributed.all_reduce(packed)
        return (packed / self.world_size).tolist()

    def log_metrics(self, record: dict) -> None:
        """Append one line to metrics.jsonl, flushed and fsynced (a torn last line is ignored on read)."""
        if not self.writes:
            return
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)  # never through a link
        with open(os.open(self.run_dir / ckpt.METRICS_FILE, flags, 0o644), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def trim_metrics(self) -> None:
        """On resume, drop metrics logged after the checkpoint: those steps will be trained again."""
        if not self.writes:
            return
        path = self.run_dir / ckpt.METRICS_FILE
        if not path.is_file():
            return
        kept = [
            json.dumps(r) + "\n" for r in ckpt.read_metrics(self.run_dir) if r.get("step", 0) <= self.step
        ]
        ckpt.atomic_write(path, "".join(kept).encode("utf-8"))

    # ---------------------------------------------------------------------------------------------
    # the loop

    def averaged(self):
        """A block in which the model holds the weights that are evaluated and saved: the average with
        ``ema``, else its own."""
        return self.average.applied() if self.average is not None else contextlib.nullcontext()

    def _progress_fraction(self) -> float:
        c = self.config
        if c.max_steps:
            return self.step / c.max_steps
        if c.max_minutes:
            return self.elapsed / (60 * c.max_minutes)
        return 0.0

    def _where_now(self) -> str:
        if not self.step:
            return ""
        return f"; at step {self.step:,} after {self.elapsed / 60:.1f} minutes"

    def _done(self) -> bool:
        c = self.config
        return bool(
            (c.max_steps and self.step >= c.max_steps)
            or (c.max_minutes and self.elapsed >= 60 * c.max_minutes)
        )

    def _set_lr(self) -> float:
        lr = self.config.lr * self.lr_scale * lr_factor(self.config, self.step, self._progress_fraction())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def train_step(self) -> dict[str, float]:
        """One optimizer step on the next batch; raises :class:`TrainingError` on divergence."""
        self.model.train()
        batch, new_pass = self.task.next_batch()
        batch = to_device(batch, self.device)
        if new_pass:
            self.carry = None
        lr = self._set_lr()
        with autocast(self.device, self.precision):
            loss, carry, count = self.task.training_loss(self.wrapped, batch, self.carry)
        (value,) = self._agree(float(loss.detach()))  # the global batch's loss, the same on every rank
        if not math.isfinite(value):
            raise TrainingError(f"the loss became {value} at step {self.step + 1}")
        factor = self.task.explode_factor
        if self.first_loss is None:
            self.first_loss = value
        elif factor is not None and value > factor * self.first_loss:
            raise TrainingError(
                f"the loss exploded at step {self.step + 1} ({value:.3f} > {factor:g} x the first, "
                f"{self.first_loss:.3f}); try a lower --lr or --grad-clip"
            )
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.config.grad_clip if self.config.grad_clip else float("inf")
        )
        if not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingError(f"the gradient became {float(norm)} at step {self.step + 1}")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.average is not None:
            self.average.update()
        self.carry = detach(carry)
        self.step += 1
        self.tokens_seen += count * self.world_size
        return {"loss": value, "lr": lr, "grad_norm": float(norm), "tokens": count}

    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        with torch.no_grad(), autocast(self.device, self.precision), self.averaged():
            metrics = self.task.evaluate(self.model)
        self.model.train()
        self.last_eval = metrics
        return metrics

    def fit(self) -> dict[str, Any]:
        """Train until ``max_steps`` or ``max_minutes``; returns a summary. Saves on SIGINT/SIGTERM."""
        c = self.config
        if not c.max_steps and not c.max_minutes:
            from rnnkit.errors import UsageError

            raise UsageError("set --max-steps or --max-minutes (or both)")
        if c.threads:
            torch.set_num_threads(c.threads)
        summary: dict[str, Any] = {"stopped": "done"}
        if self.rank == 0:
            log.info("budget: %s%s", describe_budget(c), self._where_now())
        if self._done():
            log.warning(
                "nothing to train: this run has already used its budget (%s). The budget counts from the "
                "run's start, also on --resume: give a larger --max-steps or --max-minutes to go on",
                self._where_now().removeprefix("; "),
            )
            summary.update(step=self.step, elapsed=self.elapsed, best_val=self.best_val, nothing_trained=True)
            return summary
        window_tokens, window_time, window_loss, window_steps = 0, 0.0, 0.0, 0
        bar = _Bar(self) if self.progress and self.rank == 0 else None
        beat = _Heartbeat(self) if bar is None and self.rank == 0 else None
        with _Signals() as signals, bar or contextlib.nullcontext():
            while not self._done():
                started = time.perf_counter()
                try:
                    stats = self.train_step()
                except TrainingError as exc:
                    if c.on_nan == "rollback" and self.run_dir is not None and self.rollbacks < MAX_ROLLBACKS:
                        rollbacks, scale = self.rollbacks + 1, self.lr_scale * 0.5
                        name = self.resume("last")
                        self.rollbacks, self.lr_scale = rollbacks, scale
                        log.warning("%s; rolled back to %s, learning rate x%g", exc, name, self.lr_scale)
                        continue
                    if self.writes:
                        raise TrainingError(
                            f"{exc}; the last good checkpoint in {self.run_dir} is intact"
                        ) from None
                    raise
                spent = time.perf_counter() - started
                if self.on_step:
                    self.on_step(self)
                received = signals.received is not None
                if self.world_size > 1:  # stop together: the same clock and the same signal on every rank
                    spent, anyone = self._agree(spent, float(received))
                    received = anyone > 0
                self.elapsed += spent
                window_tokens += stats["tokens"] * self.world_size  # the global batch
                window_time += spent
                window_loss += stats["loss"]
                window_steps += 1
                for shown in (bar, beat):
                    if shown is not None:
                        shown.update(stats["loss"], window_tokens / max(window_time, 1e-9))
                last = self._done()
                if self.step % c.log_interval == 0 or last:
                    self.log_metrics(
                        {
                            "step": self.step,
                            "elapsed": round(self.elapsed, 3),
                            "train_loss": round(window_loss / window_steps, 5),
                            "lr": stats["lr"],
                            "grad_norm": round(stats["grad_norm"], 4),
                            "tokens_per_s": round(window_tokens / max(window_time, 1e-9), 1),
                            "tokens_seen": self.tokens_seen,
                        }
                    )
                    summary["train_loss"] = window_loss / window_steps
                    summary["tokens_per_s"] = window_tokens / max(window_time, 1e-9)
                    window_tokens, window_time, window_loss, window_steps = 0, 0.0, 0.0, 0
                if self.step % c.eval_interval == 0 or last:
                    self._evaluate_and_save()
                elif self.step % c.checkpoint_interval == 0:
                    self.save()
                if received and not last:
                    self._evaluate_and_save(evaluate=False)
                    summary["stopped"] = signal.Signals(signals.received or signal.SIGTERM).name
                    break
        summary.update(step=self.step, elapsed=self.elapsed, best_val=self.best_val, **self.last_eval)
        summary["tokens_per_s"] = self.tokens_seen / max(self.elapsed, 1e-9)  # whole run, all ranks
        return summary

    def _evaluate_and_save(self, evaluate: bool = True) -> None:
        metrics = self.evaluate() if evaluate and self.rank == 0 else {}  # the others wait in save()
        name, direction = self.task.selection
        val = metrics.get(name)
        key = None if val is None else (val if direction == "min" else -val)  # best_val: lower is better
        best = key is not None and key < self.best_val
        if best:
            self.best_val = key
        if metrics:
            self.log_metrics({"step": self.step, "elapsed": round(self.elapsed, 3), **metrics})
            text = " | ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            log.info("step %d | %s%s", self.step, text, " (best)" if best else "")
        self.save(best=best or math.isinf(self.best_val))
        if evaluate and self.rank == 0:
            self.model.eval()
            with self.averaged():
                self.task.on_evaluate(self.model, self.step)
            self.model.train()


def describe_budget(c: TrainConfig) -> str:
    """``at most 5 minutes`` / ``at most 2,000 steps or 10 minutes, whichever comes first``."""
    parts = ([f"{c.max_steps:,} steps"] if c.max_steps else []) + (
        [f"{c.max_minutes:g} minutes"] if c.max_minutes else []
    )
    return "at most " + " or ".join(parts) + (", whichever comes first" if len(parts) > 1 else "")


class _Bar:
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

    def __enter__(self) -> _Bar:
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


class _Heartbeat:
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
