"""Language-model pre-training of a classifier's embedding and RNN on its training texts (the stage
before classification, in the run's ``pretrain/`` sub-folder)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.data.buckets import BucketStream, pad
from rnnkit.errors import UsageError
from rnnkit.tasks.classify.config import TASK
from rnnkit.tasks.classify.model import SequenceClassifier
from rnnkit.train.checkpoint import STAGES, has_checkpoint
from rnnkit.train.task import Task

if TYPE_CHECKING:  # annotations only: the classification task builds its pre-training stage
    from rnnkit.tasks.classify.task import ClassifyTask


PRETRAIN = STAGES[0]
"""The sub-folder of a run that holds its language-model pre-training."""


class TextLanguageModel(nn.Module):
    """A classifier's embedding and RNN read as language models, for pre-training: the forward
    direction's output at step t predicts token t + 1, the backward direction's predicts token t - 1.

    ``forward(ids, lengths)`` gives the summed cross-entropy and the number of predictions. Bigram
    inputs read as zeros here (each shows a neighbour that one of the directions must predict). A
    bidirectional RNN of more than one layer is refused: its upper layers see both sides of every step.
    """

    def __init__(self, classifier: SequenceClassifier, vocab_size: int, unk_id: int | None) -> None:
        """``vocab_size``: the heads predict token ids below it; higher ids are scored as ``unk_id``, the
        id of the token table's ``<unk>`` (which must be one of those predicted)."""
        super().__init__()
        if unk_id is None or not 0 <= unk_id < vocab_size:
            raise ValueError(f"unk_id: expected the id of <unk>, below vocab_size {vocab_size}; got {unk_id}")
        self.unk_id = unk_id
        rnn = classifier.rnn
        if rnn.bidirectional and rnn.num_layers > 1:
            raise UsageError(
                "pretrain: a bidirectional RNN of more than one layer cannot be pre-trained as a language "
                "model (its upper layers see both sides of each step); use --num-layers 1 or --unidirectional"
            )
        self.classifier = classifier
        self.next_head = nn.Linear(rnn.hidden_size, vocab_size)
        self.previous_head = nn.Linear(rnn.hidden_size, vocab_size) if rnn.bidirectional else None

    def predictions(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits ``(N, T - 1, V)`` of tokens 2..T from the forward direction at steps 1..T-1, and of
        tokens 1..T-1 from the backward direction at steps 2..T (``None`` when unidirectional)."""
        c, h = self.classifier, self.classifier.rnn.hidden_size
        x = c.embedding(ids)
        if c.bigram is not None:
            x = torch.cat([x, x.new_zeros(*x.shape[:2], 2 * c.bigram.embedding_dim)], dim=-1)
        out, _ = c.rnn(c.dropout(x), lengths=lengths)
        out = c.dropout(out)
        ahead = self.next_head(out[:, :-1, :h])
        behind = self.previous_head(out[:, 1:, h:]) if self.previous_head is not None else None
        return ahead, behind

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, int]:
        ahead, behind = self.predictions(ids, lengths)
        ids = ids.masked_fill(ids >= self.next_head.out_features, self.unk_id)  # rare tokens: <unk>
        mask = torch.arange(ids.shape[1] - 1, device=ids.device)[None] < (lengths.to(ids.device)[:, None] - 1)
        loss = F.cross_entropy(ahead[mask].float(), ids[:, 1:][mask], reduction="sum")
        if behind is not None:
            loss = loss + F.cross_entropy(behind[mask].float(), ids[:, :-1][mask], reduction="sum")
        return loss, int(mask.sum()) * (1 if behind is None else 2)


class PretrainTask(Task):
    """Language-model pre-training on the classification task's training texts (labels unused); the
    validation texts give ``val_lm_loss``, nats per predicted token."""

    name = TASK
    unit = "tokens"
    unused_parameters = True  # the classifier's head waits for the classification stage

    selection = ("val_lm_loss", "min")

    def __init__(self, task: ClassifyTask) -> None:
        self.task, self.config = task, task.config
        self.rank, self.world_size = task.rank, task.world_size
        t, w = task.config.train, task.world_size
        lengths = [len(x) for x in task.train.ids]
        self.stream = BucketStream(lengths, t.batch_size * w, t.seed + 1, min_rows=w)

    def next_batch(self):
        rows = self.stream.next_rows()
        mine = self.shard(rows)
        ids, lengths = pad([self.task.train.ids[i] for i in mine])  # no bigrams here
        predicted = lambda rows: sum(len(self.task.train.ids[i]) - 1 for i in rows)  # noqa: E731
        return (ids, lengths, self.share(predicted(mine), predicted(rows))), False

    def data_state(self) -> dict:
        return self.stream.state()

    def load_data_state(self, state: dict) -> None:
        self.stream.load_state(state)

    def training_loss(self, model: nn.Module, batch, carry):
        ids, lengths, share = batch
        loss, count = model(ids, lengths)
        return loss / max(count, 1) * share, None, count

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        rows = self.task.val
        order = sorted(range(len(rows.ids)), key=lambda i: len(rows.ids[i]))
        total, count = 0.0, 0
        device = next(model.parameters()).device
        for start in range(0, len(order), 128):
            ids, lengths = pad([rows.ids[i] for i in order[start : start + 128]])
            loss, n = model(ids.to(device), lengths)
            total, count = total + float(loss), count + n
        return {"val_lm_loss": total / max(count, 1)}

    def on_evaluate(self, model: nn.Module, step: int) -> None:
        return None

    def checkpoint_extras(self) -> dict:
        return self.task.checkpoint_extras() | {"stage": "pretrain"}


def stopped_in_pretraining(run_dir: Path) -> bool:
    """Whether a run was stopped during its pre-training: checkpoints there, none of its own yet."""
    return not has_checkpoint(run_dir) and has_checkpoint(run_dir / PRETRAIN)
