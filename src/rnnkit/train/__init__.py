"""The training engine shared by every task."""

from rnnkit.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from rnnkit.train.config import TrainConfig
from rnnkit.train.trainer import Task, Trainer

__all__ = ["Checkpoint", "Task", "TrainConfig", "Trainer", "load_checkpoint", "save_checkpoint"]
