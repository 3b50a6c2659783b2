r"""Sentence classification from the last output of a (bi)RNN: sentiment analysis, topic labels.

The tutorial's many-to-one RNN: read the whole sequence, classify from the state at its end. For a
bidirectional RNN the "end" of each direction differs: the sequence's representation is the forward
state at its own last token joined with the backward state at its first token,

.. math::
    r = [\overrightarrow{h}_{T_b} ; \overleftarrow{h}_1], \qquad p(y \mid x) = \mathrm{softmax}(W r + b),

which :class:`rnnkit.nn.Recurrent`'s final state gives exactly, padded batch or not. ``pool="mean"``
and ``pool="max"`` average or max-pool the outputs over the real steps instead, for comparison;
``pool="concat"`` joins all three, :math:`[r; \mathrm{mean}_t\, o_t; \max_t o_t]` (ULMFiT's concat
pooling, Howard and Ruder 2018).

Tokens are characters for Chinese and Japanese and lower-cased words for other text (chosen from the
data, or forced with ``tokens``). Batches hold texts of similar length (length buckets), so little
padding is read.

With ``pretrain.minutes`` (or ``pretrain.steps``) the embedding and the RNN are first trained as
language models on the training texts themselves, labels unused (Dai and Le, "Semi-supervised
sequence learning", 2015): the forward direction predicts each next token and the backward direction
each previous one, through two heads that are then dropped; classification training continues from
there. The pre-training minutes come out of ``train.max_minutes``.

With ``model.bigram_size`` > 0, character tokens also see their two neighbouring bigrams, as in the
tagger: the input at step t is :math:`[E_c(c_t); E_b(c_{t-1}c_t); E_b(c_t c_{t+1})]` ("不" is "not",
but "不错" is "not bad": good). Off by default: on ChnSentiCorp's validation rows they did not help
(best validation accuracy 0.902 against 0.911 without; the bigram model over-fits sooner).

With ``members`` > 1 the run is an ensemble: that many classifiers are trained one after another in
sub-folders ``member-1``, ``member-2``, ... of the run folder, member i with seed ``train.seed + i - 1``
(so each starts from its own weights, reads its own batch order and, without a ``data.val`` file,
holds out its own validation rows: every training row teaches most members), and each keeps its own
best checkpoint by its own validation accuracy. Predictions average the members' probabilities.
``train.max_minutes`` (and ``pretrain.minutes``) are the whole ensemble's, shared out evenly;
``train.max_steps`` is each member's. A classifier that over-fits within a fraction of the budget
(ChnSentiCorp's peaks after about 600 of 1,950 steps) turns the rest of the budget into members.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.config import check_rnn_fields, to_dict
from rnnkit.data.buckets import BucketStream, pad
from rnnkit.data.table import Table, TokenVocab, bigram_keys, choose_tokens, read_table, tokenize
from rnnkit.errors import CheckpointError, DataError, UsageError
from rnnkit.nn import LSTMState, Recurrent
from rnnkit.nn.bigrams import embed_with_bigrams
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import (
    ENSEMBLE_FILE,
    FORMAT_VERSION,
    STAGES,
    atomic_write_json,
    has_checkpoint,
    load_weights,
    read_metrics,
    task_config,
)
from rnnkit.train.config import TrainConfig, task_training
from rnnkit.train.run import run as run_task
from rnnkit.train.rundir import RunFolder
from rnnkit.train.safefiles import read_json_file
from rnnkit.train.task import Setup, Stage, Task, TaskSpec
from rnnkit.train.trainer import describe_budget

log = logging.getLogger("rnnkit")
TASK = "classify"
PRETRAIN = STAGES[0]
"""The sub-folder of a run that holds its language-model pre-training."""
POOLS = ("last", "mean", "max", "concat")
TRUNCATIONS = ("head", "tail", "both")


@dataclass(kw_only=True)
class ClassifierModelConfig:
    cell: str = "lstm"
    """lstm, gru or rnn."""
    embedding_size: int = 128
    hidden_size: int = 128
    """Units per direction."""
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    """Dropout on the embeddings, between layers and on the pooled representation."""
    pool: str = "last"
    """last (the final states, as above), mean or max over the real steps, or concat (all three)."""
    bigram_size: int = 0
    """Embedding size of each character's left and right bigrams; 0: none. Character tokens only."""

    def __post_init__(self) -> None:
        check_rnn_fields(self, positive=("embedding_size", "hidden_size", "num_layers"))
        if self.pool not in POOLS:
            raise ValueError(f"pool: expected one of {list(POOLS)}, got {self.pool!r}")
        if self.bigram_size < 0:
            raise ValueError(f"bigram_size: expected 0 or more, got {self.bigram_size}")


@dataclass(kw_only=True)
class ClassifierDataConfig:
    train: str = ""
    """The training file (CSV or TSV)."""
    val: str = ""
    """A validation file; empty: hold out val_fraction of the training rows (by seed)."""
    text_column: str = "1"
    label_column: str = "0"
    tokens: str = "auto"
    """auto, char or word."""
    val_fraction: float = 0.1
    max_tokens: int = 256
    """Longer texts are cut to max_tokens tokens (see truncate)."""
    truncate: str = "head"
    """Which tokens of a longer text are kept: head (the first max_tokens), tail (the last) or both
    (the first half and the last half: a review's opening and its verdict; Sun et al. 2019 found this
    best for long reviews)."""
    min_count: int = 1
    """Keep tokens seen at least this often in training."""
    max_vocab: int = 50_000
    bigram_min_count: int = 2
    """Bigrams seen fewer times in training read as <unk>."""
    max_bigrams: int = 200_000
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        if self.truncate not in TRUNCATIONS:
            raise ValueError(f"truncate: expected one of {list(TRUNCATIONS)}, got {self.truncate!r}")
        if self.tokens not in ("auto", "char", "word"):
            raise ValueError(f"tokens: expected auto, char or word, got {self.tokens!r}")
        if not 0 < self.val_fraction < 0.9:
            raise ValueError(f"val_fraction: expected a fraction in (0, 0.9), got {self.val_fraction}")
        for name in ("max_tokens", "min_count", "max_vocab", "bigram_min_count", "max_bigrams"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")


@dataclass(kw_only=True)
class PretrainConfig:
    minutes: float = 0.0
    """Minutes of language-model pre-training on the training texts, taken out of train.max_minutes;
    0 (and steps 0): none."""
    steps: int = 0
    """Or a number of pre-training steps (when train.max_minutes is not the budget)."""
    eval_interval: int = 200
    vocab: int = 1000
    """The heads predict the most frequent tokens only (rarer ones as <unk>): 1,000 characters are 96%
    of ChnSentiCorp's text, and a softmax over all 3,563 made a step 3.5 times slower."""

    def __post_init__(self) -> None:
        if self.minutes < 0 or self.steps < 0 or self.eval_interval < 1 or self.vocab < 2:
            raise ValueError(
                "pretrain: minutes and steps: 0 or more; eval_interval: positive; vocab: 2 or more"
            )

    @property
    def on(self) -> bool:
        return bool(self.minutes or self.steps)


@dataclass(kw_only=True)
class ClassifierConfig:
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)
    data: ClassifierDataConfig = field(default_factory=ClassifierDataConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(
        default_factory=task_training(batch_size=64, warmup_steps=50, eval_interval=200, ema=0.995)
    )
    members: int = 1
    """Train an ensemble of this many classifiers and average their probabilities (see the module's
    docstring); 1: one classifier."""

    def __post_init__(self) -> None:
        if self.members < 1:
            raise ValueError(f"members: expected 1 or more, got {self.members}")


# -------------------------------------------------------------------------------------------------
# the model


class SequenceClassifier(nn.Module):
    """Embedding (+ bigram embeddings) -> (bi)RNN -> pooled representation -> linear -> class logits.

    Inputs: ``ids`` ``(N, T)`` (0 is padding), ``lengths`` ``(N,)``, and with ``bigram_vocab > 0`` the
    ``(N, T + 1)`` bigram ids of :func:`rnnkit.data.table.bigram_keys`. Output: logits ``(N, C)``.
    """

    def __init__(
        self, vocab_size: int, num_labels: int, config: ClassifierModelConfig, bigram_vocab: int = 0
    ) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=0)
        width = config.bigram_size if bigram_vocab else 0
        self.bigram = nn.Embedding(bigram_vocab, width, padding_idx=0) if width else None
        self.rnn = Recurrent(
            config.embedding_size + 2 * width,
            config.hidden_size,
            cell=config.cell,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.rnn.output_size * (3 if config.pool == "concat" else 1), num_labels)

    def represent(self, ids: Tensor, lengths: Tensor, bigrams: Tensor | None = None) -> Tensor:
        """The pooled representation ``(N, D*H)`` (``(N, 3*D*H)`` for concat)."""
        x = self.dropout(embed_with_bigrams(self.embedding, self.bigram, ids, bigrams, "classifier"))
        out, state = self.rnn(x, lengths=lengths)  # out (N, T, D*H), zero at padded steps
        pool, parts = self.config.pool, []
        if pool in ("last", "concat"):
            h = state.h if isinstance(state, LSTMState) else state  # (L*D, N, H)
            top = h[-self.rnn.num_directions :]  # the last layer: forward at T_b, backward at step 1
            parts.append(torch.cat(list(top), dim=-1))
        if pool in ("mean", "concat"):
            parts.append(out.sum(1) / lengths.to(out.device, out.dtype)[:, None])
        if pool in ("max", "concat"):
            steps = torch.arange(ids.shape[1], device=ids.device)
            mask = (steps[None, :] < lengths.to(ids.device)[:, None])[..., None]
            parts.append(out.masked_fill(~mask, float("-inf")).amax(1))
        return torch.cat(parts, dim=-1)

    def forward(self, ids: Tensor, lengths: Tensor, bigrams: Tensor | None = None) -> Tensor:
        return self.head(self.dropout(self.represent(ids, lengths, bigrams)))


class TextLanguageModel(nn.Module):
    """A classifier's embedding and RNN read as language models, for pre-training: the forward
    direction's output at step t predicts token t + 1, the backward direction's predicts token t - 1.

    ``forward(ids, lengths)`` gives the summed cross-entropy and the number of predictions. Bigram
    inputs read as zeros here (each shows a neighbour that one of the directions must predict). A
    bidirectional RNN of more than one layer is refused: its upper layers see both sides of every step.
    """

    def __init__(self, classifier: SequenceClassifier, vocab_size: int) -> None:
        """``vocab_size``: the heads predict token ids below it; higher ids are scored as <unk> (1)."""
        super().__init__()
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
        ids = ids.masked_fill(ids >= self.next_head.out_features, 1)  # rare tokens: <unk>
        mask = torch.arange(ids.shape[1] - 1, device=ids.device)[None] < (lengths.to(ids.device)[:, None] - 1)
        loss = F.cross_entropy(ahead[mask].float(), ids[:, 1:][mask], reduction="sum")
        if behind is not None:
            loss = loss + F.cross_entropy(behind[mask].float(), ids[:, :-1][mask], reduction="sum")
        return loss, int(mask.sum()) * (1 if behind is None else 2)


# -------------------------------------------------------------------------------------------------
# data


@dataclass
class Encoded:
    ids: list[list[int]]
    labels: list[int]
    bigrams: list[list[int]] | None = None

    def batch(self, rows: list[int]) -> tuple[Tensor, Tensor, Tensor | None]:
        """Padded (ids, lengths, bigrams) of the given rows."""
        ids, lengths = pad([self.ids[i] for i in rows])
        bigrams = pad([self.bigrams[i] for i in rows])[0] if self.bigrams is not None else None
        return ids, lengths, bigrams


@dataclass
class TextInputs:
    """How texts become what the classifier reads: token ids, and bigram ids when it reads bigrams."""

    vocab: TokenVocab
    kind: str
    max_tokens: int
    bigrams: TokenVocab | None = None
    truncate: str = "head"

    def tokens(self, text: str) -> list[str]:
        return cut(tokenize(text, self.kind), self.max_tokens, self.truncate) or [text.strip()[:1] or "?"]

    def encode(self, texts: list[str], labels: list[int] | None = None) -> Encoded:
        docs = [self.tokens(t) for t in texts]
        pairs = (
            None if self.bigrams is None else [self.bigrams.encode(bigram_keys(d, self.kind)) for d in docs]
        )
        return Encoded([self.vocab.encode(d) for d in docs], labels or [], pairs)


def cut(tokens: list[str], limit: int, how: str = "head") -> list[str]:
    """At most ``limit`` tokens: the first ones (head), the last (tail) or the first and last halves
    (both; the head gets the odd one)."""
    if len(tokens) <= limit:
        return tokens
    if how == "head":
        return tokens[:limit]
    if how == "tail":
        return tokens[len(tokens) - limit :]
    tail = limit // 2
    return tokens[: limit - tail] + tokens[len(tokens) - tail :]


def encode_rows(table: Table, inputs: TextInputs, labels: list[str], path: str) -> Encoded:
    index = {label: i for i, label in enumerate(labels)}
    for label in table.labels:
        if label not in index:
            raise DataError(f"{path}: label {label!r} was not seen in training (labels: {', '.join(labels)})")
    return inputs.encode(table.texts, [index[label] for label in table.labels])


# -------------------------------------------------------------------------------------------------
# metrics


def format_confusion(labels: list[str], matrix: list[list[int]]) -> str:
    """The confusion matrix as a text table: a row per gold label, a column per predicted one, each
    column as wide as its widest label or count, two spaces apart."""
    head = "gold \\ predicted"
    first = max(len(head), *(len(x) for x in labels))
    widths = [max(len(label), *(len(str(row[j])) for row in matrix)) for j, label in enumerate(labels)]
    lines = [head.ljust(first) + "".join("  " + x.rjust(w) for x, w in zip(labels, widths, strict=True))]
    for label, row in zip(labels, matrix, strict=True):
        lines.append(
            label.ljust(first) + "".join("  " + str(v).rjust(w) for v, w in zip(row, widths, strict=True))
        )
    return "\n".join(lines)


def confusion(gold: list[int], pred: list[int], classes: int) -> list[list[int]]:
    """``matrix[g][p]``: how many rows of gold class g were predicted as p."""
    matrix = [[0] * classes for _ in range(classes)]
    for g, p in zip(gold, pred, strict=True):
        matrix[g][p] += 1
    return matrix


def scores(gold: list[int], pred: list[int], classes: int) -> dict:
    """Accuracy, macro-F1 (the unweighted mean of the per-class F1) and the confusion matrix."""
    matrix = confusion(gold, pred, classes)
    f1s = []
    for c in range(classes):
        tp = matrix[c][c]
        fp = sum(matrix[g][c] for g in range(classes)) - tp
        fn = sum(matrix[c]) - tp
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    accuracy = sum(matrix[c][c] for c in range(classes)) / max(len(gold), 1)
    return {"accuracy": accuracy, "macro_f1": sum(f1s) / classes, "confusion": matrix}


def score_file(
    loaded: LoadedClassifier | LoadedEnsemble, path: Path, text_column: str, label_column: str, encoding: str
) -> dict:
    """:func:`scores` of a trained classifier (or ensemble) on a labelled file, with its row count."""
    table = read_table(path, text_column, label_column, encoding=encoding)
    index = {label: i for i, label in enumerate(loaded.labels)}
    unknown = sorted(set(table.labels) - set(index))
    if unknown:
        raise DataError(f"{path}: labels the model never saw: {', '.join(unknown[:5])}")
    pred = loaded.predict(table.texts).argmax(-1).tolist()
    return scores([index[y] for y in table.labels], pred, len(loaded.labels)) | {"rows": len(table.texts)}


# -------------------------------------------------------------------------------------------------
# the trainer's task


class ClassifyTask(Task):
    name = TASK
    unit = "tokens"
    selection = ("val_accuracy", "max")  # the best checkpoint: highest validation accuracy

    def __init__(
        self,
        config: ClassifierConfig,
        train: Encoded,
        val: Encoded,
        inputs: TextInputs,
        labels: list[str],
        world_size: int = 1,
    ) -> None:
        self.config, self.train, self.val = config, train, val
        self.inputs, self.labels = inputs, labels
        if len(train.ids) < 2:
            raise DataError("the training file needs at least two labelled rows")
        t = config.train
        lengths = [len(x) for x in train.ids]
        self.stream = BucketStream(lengths, t.batch_size * world_size, t.seed, min_rows=world_size)

    def next_batch(self):
        rows = self.stream.next_rows()
        mine = self.shard(rows)
        ids, lengths, bigrams = self.train.batch(mine)
        labels = torch.tensor([self.train.labels[i] for i in mine], dtype=torch.long)
        return (ids, lengths, labels, bigrams, self.share(len(mine), len(rows))), False

    def data_state(self) -> dict:
        return self.stream.state()

    def load_data_state(self, state: dict) -> None:
        self.stream.load_state(state)

    def training_loss(self, model: nn.Module, batch, carry):
        ids, lengths, labels, bigrams, share = batch
        logits = model(ids, lengths, bigrams)
        return F.cross_entropy(logits.float(), labels) * share, None, int(lengths.sum())

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        result = predict_encoded(model, self.val, batch_size=128)
        loss = F.nll_loss(torch.log(result.clamp_min(1e-12)), torch.tensor(self.val.labels)).item()
        found = scores(self.val.labels, result.argmax(-1).tolist(), len(self.labels))
        return {"val_loss": loss, "val_accuracy": found["accuracy"], "val_macro_f1": found["macro_f1"]}

    def on_evaluate(self, model: nn.Module, step: int) -> None:
        return None

    def stages(self, model: nn.Module) -> list[Stage]:
        """With ``--pretrain-minutes`` or ``--pretrain-steps``: first the embedding and the RNN as
        language models on the training texts (in ``pretrain/``), then the classifier."""
        p, budget = self.config.pretrain, self.config.train
        if not p.on:
            return [Stage(model, self, budget)]
        if budget.max_minutes and p.minutes:
            if p.minutes >= budget.max_minutes:
                raise UsageError(
                    f"--pretrain-minutes {p.minutes:g} leaves nothing of --max-minutes {budget.max_minutes:g}"
                )
            budget = replace(budget, max_minutes=budget.max_minutes - p.minutes)
        pre = replace(
            self.config.train, max_minutes=p.minutes, max_steps=p.steps, eval_interval=p.eval_interval,
            checkpoint_interval=p.eval_interval,
        )  # fmt: skip
        lm = TextLanguageModel(model, min(len(self.inputs.vocab), p.vocab))
        note = "pre-training the embedding and the RNN as language models on the training texts"
        return [
            Stage(lm, PretrainTask(self), pre, PRETRAIN, note=note),
            Stage(model, self, budget, note="pre-training done; now classifying"),
        ]

    def checkpoint_extras(self) -> dict:
        return {
            "vocab": self.inputs.vocab.tokens,
            "labels": self.labels,
            "tokens": self.inputs.kind,
            "bigrams": self.inputs.bigrams.tokens if self.inputs.bigrams is not None else None,
        }


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


@torch.no_grad()
def predict_encoded(model: nn.Module, rows: Encoded, batch_size: int = 128) -> Tensor:
    """Class probabilities ``(N, C)`` in the order of ``rows``; batches by length for speed."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(rows.ids)), key=lambda i: len(rows.ids[i]))
    out = torch.empty(len(rows.ids), model.head.out_features)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, lengths, bigrams = rows.batch(chunk)
        bigrams = bigrams if bigrams is None else bigrams.to(device)
        out[chunk] = torch.softmax(model(ids.to(device), lengths, bigrams).float(), dim=-1).cpu()
    return out


# -------------------------------------------------------------------------------------------------
# training, loading, predicting


def load_tables(config: ClassifierConfig) -> tuple[Table, Table]:
    d = config.data
    table = read_table(Path(d.train), d.text_column, d.label_column, encoding=d.encoding)
    if table.skipped_empty:
        log.warning("%s: skipped %d row(s) with an empty text", d.train, table.skipped_empty)
    if d.val:
        return table, read_table(Path(d.val), d.text_column, d.label_column, encoding=d.encoding)
    rng = random.Random(config.train.seed)
    order = list(range(len(table.texts)))
    rng.shuffle(order)
    cut = max(1, int(len(order) * d.val_fraction))
    held, kept = sorted(order[:cut]), sorted(order[cut:])
    pick = lambda rows: Table([table.texts[i] for i in rows], [table.labels[i] for i in rows])  # noqa: E731
    return pick(kept), pick(held)


def sort_labels(labels: set[str]) -> list[str]:
    """Numbers in numeric order (0, 1, 2, 10), other labels alphabetically."""
    return sorted(labels, key=lambda x: (0, float(x), x) if _is_number(x) else (1, 0.0, x))


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def train_classifier(
    config: ClassifierConfig,
    out: Path,
    *,
    force: bool = False,
    resume: bool = False,
    progress: bool = False,
    on_step=None,
) -> dict:
    """What ``rnnkit classify train`` runs: one classifier through the one runner, or an ensemble (each
    member through it in turn)."""
    if config.members > 1:
        return train_ensemble(config, Path(out), force=force, resume=resume, progress=progress)
    return run_task(SPEC, config, out, force=force, resume=resume, progress=progress, on_step=on_step)


def prepare_task(config: ClassifierConfig, setup: Setup) -> ClassifyTask:
    """Read the tables, build the vocabulary (or read back a resumed run's) and encode the rows."""
    train_table, val_table = load_tables(config)
    d = config.data
    if setup.resumed is not None:
        inputs, labels = saved_inputs(setup.resumed.config, d), setup.resumed.config["labels"]
    else:
        kind = config.data.tokens if config.data.tokens != "auto" else choose_tokens(train_table.texts)
        labels = sort_labels(set(train_table.labels))
        if len(labels) < 2:
            raise DataError(
                f"{config.data.train}: only one label ({labels[0]!r}); a classifier needs two or more"
            )
        inputs = TextInputs(TokenVocab([]), kind, d.max_tokens, truncate=d.truncate)
        docs = [inputs.tokens(t) for t in train_table.texts]
        inputs.vocab = TokenVocab.build(docs, d.min_count, d.max_vocab)
        if kind == "char" and config.model.bigram_size:
            pairs = (bigram_keys(doc, kind) for doc in docs)
            inputs.bigrams = TokenVocab.build(pairs, d.bigram_min_count, d.max_bigrams)
    train = encode_rows(train_table, inputs, labels, d.train)
    val = encode_rows(val_table, inputs, labels, d.val or d.train)
    task = ClassifyTask(config, train, val, inputs, labels, world_size=setup.world_size)
    task.rank, task.world_size = setup.rank, setup.world_size
    log.info(
        "data: %s training and %s validation rows, %d labels (%s), %s tokens, vocabulary of %s%s",
        f"{len(train.ids):,}",
        f"{len(val.ids):,}",
        len(labels),
        ", ".join(labels[:10]),
        inputs.kind,
        f"{len(inputs.vocab):,}",
        f", {len(inputs.bigrams):,} bigrams" if inputs.bigrams is not None else "",
    )
    return task


def member_names(count: int) -> list[str]:
    return [f"member-{i}" for i in range(1, count + 1)]


USEFUL_MEMBER_STEPS = 200
"""An ensemble member trained fewer steps than this is warned about (on ChnSentiCorp, the members of
the 20-minute ensemble that reached 0.89 trained 550-580 steps each, and one classifier peaked at 600)."""


def member_config(config: ClassifierConfig, index: int) -> ClassifierConfig:
    """Member ``index`` (0-based) of an ensemble: its own seed and its share of the time budget."""
    k, t, p = config.members, config.train, config.pretrain
    return replace(
        config,
        members=1,
        train=replace(t, seed=t.seed + index, max_minutes=t.max_minutes / k),
        pretrain=replace(p, minutes=p.minutes / k),
    )


def has_started(run_dir: Path) -> bool:
    return has_checkpoint(run_dir) or stopped_in_pretraining(run_dir)


def train_ensemble(config: ClassifierConfig, out: Path, *, force: bool, resume: bool, progress: bool) -> dict:
    """Train the members one after another (a resumed run goes on from the member it stopped in)."""
    with RunFolder(out, force=force, resume=resume) as run:
        return _train_members(config, out, run, resume=resume, progress=progress)


def _train_members(config: ClassifierConfig, out: Path, run: RunFolder, *, resume: bool, progress: bool):
    names = member_names(config.members)
    if resume:
        saved = read_ensemble(out)
        if saved["members"] != names:
            raise UsageError(
                f"--resume: {out} is an ensemble of {len(saved['members'])}; members cannot change"
            )
    run.commit()
    # written first, so that a run stopped in its first member is already resumable as an ensemble
    record = {"format_version": FORMAT_VERSION, "task": TASK, "members": names, "config": to_dict(config)}
    atomic_write_json(out / ENSEMBLE_FILE, record)
    found: list[dict] = []
    for index, name in enumerate(names):
        log.info("ensemble member %d of %d (seed %d) in %s", index + 1, len(names),
                 config.train.seed + index, out / name)  # fmt: skip
        folder = out / name
        going_on = resume and has_started(folder)
        if resume and not going_on and folder.exists():
            shutil.rmtree(folder)  # a member that crashed before its first checkpoint starts afresh
        summary = run_task(SPEC, member_config(config, index), folder, resume=going_on, progress=progress)
        if summary.get("stopped") not in (None, "done"):
            return summary
        best = max((r for r in read_metrics(folder) if "val_accuracy" in r), key=lambda r: r["val_accuracy"])
        log.info("member %d: best validation accuracy %.4f (step %d)", index + 1, best["val_accuracy"],
                 best["step"])  # fmt: skip
        if summary["step"] < USEFUL_MEMBER_STEPS:
            log.warning(
                "warning: member %d trained only %d steps (its share of the budget: %s); a member needs a "
                "few hundred to be worth averaging: give a larger --max-minutes or fewer --members",
                index + 1, summary["step"], describe_budget(member_config(config, index).train),
            )  # fmt: skip
        found.append({"step": summary["step"], **{k: v for k, v in best.items() if k.startswith("val_")}})
    summary = {
        "stopped": "done",
        "members": found,
        "step": sum(m["step"] for m in found),
        "val_accuracy": sum(m["val_accuracy"] for m in found) / len(found),
        "val_macro_f1": sum(m["val_macro_f1"] for m in found) / len(found),
    }
    if config.data.val:  # one validation file for all: the ensemble itself can be scored on it
        d = config.data
        result = score_file(load_classifier(out), Path(d.val), d.text_column, d.label_column, d.encoding)
        summary |= {"ensemble_val_accuracy": result["accuracy"], "ensemble_val_macro_f1": result["macro_f1"]}
        log.info("the ensemble on %s: accuracy %.4f, macro-F1 %.4f", config.data.val, result["accuracy"],
                 result["macro_f1"])  # fmt: skip
    return summary


def read_ensemble(run_dir: Path) -> dict:
    """An ensemble run's ``ensemble.json``, checked; a one-line error when it is not one."""
    path = Path(run_dir) / ENSEMBLE_FILE
    if not os.path.lexists(path):
        raise CheckpointError(f"{run_dir}: no {ENSEMBLE_FILE} (not an ensemble run folder)")
    record = read_json_file(path, "ensemble record")
    try:
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        names, config = record["members"], record["config"]
        if record.get("task") != TASK or not isinstance(names, list) or not isinstance(config, dict):
            raise ValueError("not a classifier ensemble")
        if not all(isinstance(n, str) and re.fullmatch(r"member-[0-9]+", n) for n in names):
            raise ValueError("member names must be member-1, member-2, ...")
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a classifier ensemble record ({exc})") from None
    return record


def ensemble_config(run_dir: Path, record: dict) -> ClassifierConfig:
    """The whole ensemble's config in its :func:`read_ensemble` record."""
    from rnnkit.config import from_dict

    try:
        return from_dict(ClassifierConfig, record["config"])
    except (TypeError, ValueError, UsageError) as exc:
        raise CheckpointError(f"{Path(run_dir) / ENSEMBLE_FILE}: not a classifier config ({exc})") from None


def is_ensemble(run_dir: Path) -> bool:
    return (Path(run_dir) / ENSEMBLE_FILE).is_file()


def bigram_vocab(inputs: TextInputs) -> int:
    return len(inputs.bigrams) if inputs.bigrams is not None else 0


def saved_inputs(saved: dict, data: ClassifierDataConfig) -> TextInputs:
    """The text inputs a checkpoint's config.json describes (a run from before bigrams has none)."""
    bigrams = TokenVocab(saved["bigrams"]) if saved.get("bigrams") else None
    return TextInputs(TokenVocab(saved["vocab"]), saved["tokens"], data.max_tokens, bigrams, data.truncate)


@dataclass
class LoadedClassifier:
    model: SequenceClassifier
    inputs: TextInputs
    labels: list[str]
    config: ClassifierConfig
    checkpoint: str

    @property
    def kind(self) -> str:
        return self.inputs.kind

    def encode(self, texts: list[str]) -> Encoded:
        return self.inputs.encode(texts)

    def predict(self, texts: list[str]) -> Tensor:
        """Class probabilities ``(N, C)``."""
        return predict_encoded(self.model, self.encode(texts))


def stopped_in_pretraining(run_dir: Path) -> bool:
    """Whether a run was stopped during its pre-training: checkpoints there, none of its own yet."""
    return not has_checkpoint(run_dir) and has_checkpoint(run_dir / PRETRAIN)


def saved_classifier_config(run_dir: Path) -> ClassifierConfig:
    run_dir = Path(run_dir)
    if is_ensemble(run_dir):
        return ensemble_config(run_dir, read_ensemble(run_dir))
    if stopped_in_pretraining(run_dir):
        run_dir = run_dir / PRETRAIN
    return task_config(run_dir, "last", TASK, ClassifierConfig, "a classifier")[1]


@dataclass
class LoadedEnsemble:
    """Classifiers whose averaged probabilities are the prediction; the same interface as one."""

    members: list[LoadedClassifier]
    labels: list[str]
    config: ClassifierConfig
    checkpoint: str

    @property
    def kind(self) -> str:
        return self.members[0].kind

    def predict(self, texts: list[str]) -> Tensor:
        """Class probabilities ``(N, C)``: the mean of the members' (a label a member never saw: 0)."""
        total = torch.zeros(len(texts), len(self.labels))
        for member in self.members:
            columns = [self.labels.index(label) for label in member.labels]
            total[:, columns] += member.predict(texts)
        return total / len(self.members)


def load_classifier(
    run_dir: Path, which: str = "best", device: str = "cpu"
) -> LoadedClassifier | LoadedEnsemble:
    """A trained classifier, or an ensemble of them (a run trained with ``members`` > 1)."""
    run_dir = Path(run_dir)
    if is_ensemble(run_dir):
        record = read_ensemble(run_dir)
        config, names = ensemble_config(run_dir, record), record["members"]
        trained = [name for name in names if has_checkpoint(run_dir / name)]
        if not trained:
            raise CheckpointError(f"{run_dir}: no member of the ensemble has a checkpoint yet")
        if len(trained) < len(names):
            log.warning("%s: %d of %d members trained; predicting with those (--resume %s to finish)",
                        run_dir, len(trained), len(names), run_dir)  # fmt: skip
        members = [load_one_classifier(run_dir / name, which, device) for name in trained]
        labels = sort_labels({label for m in members for label in m.labels})
        names_used = ",".join(f"{name}/{m.checkpoint}" for name, m in zip(trained, members, strict=True))
        return LoadedEnsemble(members, labels, config, names_used)
    return load_one_classifier(run_dir, which, device)


def load_one_classifier(run_dir: Path, which: str = "best", device: str = "cpu") -> LoadedClassifier:
    loaded, config = task_config(run_dir, which, TASK, ClassifierConfig, "a classifier")
    try:
        inputs, labels = saved_inputs(loaded.config, config.data), loaded.config["labels"]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{loaded.folder}: config.json lacks the vocabulary or labels ({exc})"
        ) from None
    model = build_checked(
        lambda: SequenceClassifier(len(inputs.vocab), len(labels), config.model, bigram_vocab(inputs)),
        checkpoint=loaded,
    )
    load_weights(model, loaded)
    model.to(device).eval()
    return LoadedClassifier(model, inputs, labels, config, loaded.name)


SPEC = TaskSpec(
    name=TASK,
    config=ClassifierConfig,
    prepare=prepare_task,
    build_model=lambda task: SequenceClassifier(
        len(task.inputs.vocab), len(task.labels), task.config.model, bigram_vocab(task.inputs)
    ),
    load=load_classifier,
    loaded=LoadedClassifier,
    train=train_classifier,
)
"""The classifier in the registry (``rnnkit.tasks.TASKS["classify"]``); ensembles train through
:func:`train_classifier`, each member through the one runner."""
