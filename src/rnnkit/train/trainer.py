"""The one training engine every task uses: loop, truncated BPTT carry, AMP, clipping, schedule,
evaluation, checkpoints, metrics, signals and divergence handling.

The trainer knows nothing of any task. A task (see :class:`Task`) hands it batches, a loss and an
evaluation; the trainer hands back checkpoints and metrics. All state that a resume needs lives on the
trainer and goes through :meth:`Trainer.state_dict` / :meth:`Trainer.load_state_dict`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.config import to_dict
from rnnkit.errors import TrainingError
from rnnkit.train import checkpoint as ckpt
from rnnkit.train.carry import detach, flatten_carry
from rnnkit.train.config import TrainConfig
from rnnkit.train.distributed import all_gather, barrier, gather_rows, global_batch_norm, mean_over_ranks
from rnnkit.train.hardware import autocast, cpu_has_native_bf16, resolve_device, resolve_precision, to_device
from rnnkit.train.metricslog import MetricsSink, trim_metrics
from rnnkit.train.optim import WeightAverage, load_optimizer, lr_factor, make_optimizer, optimizer_tensors
from rnnkit.train.progress import (
    HEARTBEAT_SECONDS,
    Bar,
    Heartbeat,
    budget_fraction,
    budget_spent,
    describe_budget,
    where_now,
)  # fmt: skip
from rnnkit.train.signals import Signals
from rnnkit.train.task import Task
from rnnkit.train.tensorboard import tensorboard_available

log = logging.getLogger("rnnkit")
MAX_ROLLBACKS = 5

__all__ = [  # the helpers now in hardware, optim and progress, still importable from here
    "HEARTBEAT_SECONDS", "MAX_ROLLBACKS", "Task", "Trainer", "WeightAverage", "autocast",
    "cpu_has_native_bf16", "describe_budget", "detach", "lr_factor", "make_optimizer",
    "resolve_device", "resolve_precision", "to_device",
]  # fmt: skip


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
            global_batch_norm(self.model)  # batch statistics over the global batch, as in one process
            self.wrapped = DistributedDataParallel(  # broadcasts rank 0's weights
                self.model, device_ids=ids, find_unused_parameters=task.unused_parameters
            )
            torch.manual_seed(config.seed * 1_000_003 + rank)  # dropout masks differ between ranks
        self.optimizer = make_optimizer(self.model, config)
        self.average = WeightAverage(self.model, config.ema) if config.ema else None
        self.progress = progress
        self.on_step = on_step
        self.sink: MetricsSink | None = None  # open while fit() runs, on the rank that writes
        self.saved_tensorboard = False  # the checkpoint resumed from says tensorboard: true
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
        tensors, scalars = optimizer_tensors(opt)
        tensors.update(
            gather_rows(
                self.world_size, self.device, flatten_carry(self.carry), dim=self.task.carry_batch_dim
            )
        )
        tensors["rng.torch"] = torch.get_rng_state()
        if self.world_size > 1:
            for r, state in enumerate(all_gather(self.world_size, self.device, torch.get_rng_state())):
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
            "carry_parts": len(flatten_carry(self.carry)),
            "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars},
            "data": self.task.data_state(),
            "precision": self.precision,
            "world_size": self.world_size,
            "ema_updates": None if self.average is None else self.average.updates,
        }
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, Tensor], meta: dict) -> None:
        load_optimizer(self.optimizer, tensors, meta["optimizer"], self.device)
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
        self.saved_tensorboard = _says_tensorboard(loaded.config.get("config"))
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
    def write_dir(self) -> Path | None:
        """The run folder where this process writes (rank 0 of a run that has one), else ``None``."""
        return self.run_dir if self.rank == 0 else None

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
        barrier(self.world_size)
        return name

    def checkpoint_config(self) -> dict:
        """Every checkpoint's ``config.json``: the format, the task, its whole config, and what the task
        adds to rebuild its model (vocabulary, statistics)."""
        task = self.task
        base = {"format_version": ckpt.FORMAT_VERSION, "task": task.name, "config": to_dict(task.config)}
        return base | task.checkpoint_extras()

    def log_metrics(self, record: dict, group: str = "train") -> None:
        """A record of ``group`` (``train`` or ``val``) to metrics.jsonl and, with ``tensorboard``, to
        the event files (rank 0 of a run that writes; outside :meth:`fit`, metrics.jsonl only)."""
        if self.sink is not None:
            self.sink.record(record, group)
        elif self.write_dir is not None:
            MetricsSink(self.write_dir).record(record, group)

    def open_sink(self) -> contextlib.AbstractContextManager[Any]:
        """A block in which :attr:`sink` takes the records (rank 0 of a run that writes; from this step
        on); it is flushed and closed when the block ends, however it ends."""
        if self.write_dir is None:
            return contextlib.nullcontext()
        self.sink = MetricsSink(self.write_dir, tensorboard=self.tensorboard_on(), step=self.step)
        stack = contextlib.ExitStack()
        stack.callback(setattr, self, "sink", None)
        stack.enter_context(self.sink)
        return stack

    def tensorboard_on(self) -> bool:
        """Whether this run writes event files: ``tensorboard`` ``None`` (automatic) where the package
        is installed; ``True`` asked for them, an error without the package (:class:`TensorBoardLog`
        says so), unless the checkpoint resumed from already said ``true``: runs saved before the
        setting was automatic hold ``true`` where the package was installed then, so a resume on a
        machine without it warns once and goes on without event files."""
        wanted = self.config.tensorboard
        if wanted is False:
            return False
        if tensorboard_available():
            return True
        if wanted and self.saved_tensorboard:
            log.warning(
                "TensorBoard: this run's saved config says tensorboard: true, but the tensorboard package "
                "is not installed; going on without event files (install 'rnnkit[tensorboard]', or "
                "resume with --no-tensorboard)"
            )
            return False
        return bool(wanted)

    def trim_metrics(self) -> None:
        """On resume, drop metrics logged after the checkpoint: those steps will be trained again."""
        if self.write_dir is not None:
            trim_metrics(self.write_dir, self.step)

    # ---------------------------------------------------------------------------------------------
    # the loop

    def averaged(self):
        """A block in which the model holds the weights that are evaluated and saved: the average with
        ``ema``, else its own."""
        return self.average.applied() if self.average is not None else contextlib.nullcontext()

    def _where_now(self) -> str:
        return where_now(self.step, self.elapsed)

    def _done(self) -> bool:
        return budget_spent(self.config, self.step, self.elapsed)

    def _set_lr(self) -> float:
        fraction = budget_fraction(self.config, self.step, self.elapsed)
        lr = self.config.lr * self.lr_scale * lr_factor(self.config, self.step, fraction)
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
            loss, carry, units = self.task.training_loss(self.wrapped, batch, self.carry)
        # the global batch's loss (the same on every rank) and the ranks' mean count of units
        value, count = mean_over_ranks(self.world_size, self.device, float(loss.detach()), float(units))
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
        self.tokens_seen += round(count * self.world_size)
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
        bar = Bar(self) if self.progress and self.rank == 0 else None
        beat = Heartbeat(self) if bar is None and self.rank == 0 else None
        with self.open_sink(), Signals() as signals, bar or contextlib.nullcontext():
            while not self._done():
                started = time.perf_counter()
                try:
                    stats = self.train_step()
                except TrainingError as exc:
                    if c.on_nan == "rollback" and self.run_dir is not None and self.rollbacks < MAX_ROLLBACKS:
                        rollbacks, scale = self.rollbacks + 1, self.lr_scale * 0.5
                        name = self.resume("last")
                        self.rollbacks, self.lr_scale = rollbacks, scale
                        self.trim_metrics()  # the steps after the checkpoint are trained again
                        if self.sink is not None:  # TensorBoard's curves go on from the checkpoint
                            self.sink.restart(self.step)
                        log.warning("%s; rolled back to %s, learning rate x%g", exc, name, self.lr_scale)
                        continue
                    if self.write_dir is not None:
                        raise TrainingError(
                            f"{exc}; the last good checkpoint in {self.run_dir} is intact"
                        ) from None
                    raise
                spent = time.perf_counter() - started
                if self.on_step:
                    self.on_step(self)
                received = signals.received is not None
                if self.world_size > 1:  # stop together: the same clock and the same signal on every rank
                    spent, anyone = mean_over_ranks(self.world_size, self.device, spent, float(received))
                    received = anyone > 0
                self.elapsed += spent
                window_tokens += round(stats["tokens"] * self.world_size)  # the global batch
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
        key = math.inf if val is None else (val if direction == "min" else -val)  # best_val: lower is better
        best = key < self.best_val
        if best:
            self.best_val = key
        if metrics:
            self.log_metrics({"step": self.step, "elapsed": round(self.elapsed, 3), **metrics}, group="val")
            text = " | ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            log.info("step %d | %s%s", self.step, text, " (best)" if best else "")
        self.save(best=best or math.isinf(self.best_val))
        if evaluate and self.rank == 0:
            # what the hook hands back (the char-RNN's sample) is recorded beside the metrics
            hook: Callable[[nn.Module, int], Mapping[str, str] | None] = self.task.on_evaluate
            self.model.eval()
            with self.averaged():
                texts = hook(self.model, self.step)
            self.model.train()
            if texts and self.sink is not None:
                self.sink.texts(texts, self.step)
        if self.sink is not None:
            self.sink.flush()  # what TensorBoard shows is at most one evaluation old


def _says_tensorboard(config: Any) -> bool:
    """Whether a saved config (config.json's ``config``) has ``tensorboard: true`` in any section (the
    trainer knows not which section is its own: the classifier's pre-training has one of its own)."""
    if isinstance(config, Mapping):
        return config.get("tensorboard") is True or any(_says_tensorboard(v) for v in config.values())
    return False
