"""The classifier's task for the trainer (and its pre-training stage), training (one classifier or an
ensemble), the loaded classifier, and the task's spec in the registry."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.data.buckets import BucketStream
from rnnkit.data.items import a_list
from rnnkit.data.table import TEXT_SPECIALS, bigram_keys, choose_tokens
from rnnkit.data.vocab import TokenTable
from rnnkit.errors import CheckpointError, DataError, UsageError
from rnnkit.tasks.classify.config import TASK, ClassifierConfig
from rnnkit.tasks.classify.data import (
    Encoded,
    TextInputs,
    bigram_vocab,
    encode_rows,
    load_tables,
    saved_inputs,
    sort_labels,
)
from rnnkit.tasks.classify.ensemble import (
    LoadedEnsemble,
    ensemble_config,
    is_ensemble,
    read_ensemble,
    train_ensemble,
)
from rnnkit.tasks.classify.metrics import classify_texts, predict_encoded, scores
from rnnkit.tasks.classify.model import SequenceClassifier
from rnnkit.tasks.classify.pretrain import PRETRAIN, PretrainTask, TextLanguageModel, stopped_in_pretraining
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import has_checkpoint, load_weights, task_config
from rnnkit.train.run import run as run_task
from rnnkit.train.task import Setup, Stage, Task, TaskSpec

log = logging.getLogger("rnnkit")


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
        from typing import cast

        classifier = cast(SequenceClassifier, model)  # the model SPEC.build_model made for this task
        lm = TextLanguageModel(classifier, min(len(self.inputs.vocab), p.vocab), self.inputs.vocab.unk_id)
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
        return train_ensemble(
            SPEC, config, Path(out), force=force, resume=resume, progress=progress, on_step=on_step
        )
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
        inputs = TextInputs(TokenTable.build([], TEXT_SPECIALS), kind, d.max_tokens, truncate=d.truncate)
        docs = [inputs.tokens(t) for t in train_table.texts]
        inputs.vocab = TokenTable.build(docs, TEXT_SPECIALS, d.min_count, d.max_vocab)
        if kind == "char" and config.model.bigram_size:
            pairs = (bigram_keys(doc, kind) for doc in docs)
            inputs.bigrams = TokenTable.build(pairs, TEXT_SPECIALS, d.bigram_min_count, d.max_bigrams)
    train = encode_rows(train_table, inputs, labels, d.train)
    val = encode_rows(val_table, inputs, labels, d.val or d.train)
    task = ClassifyTask(config, train, val, inputs, labels, world_size=setup.world_size)
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


@dataclass
class LoadedClassifier:
    """A trained classifier, as ``rnnkit.load(run_dir)`` returns it (an ensemble run gives a
    :class:`LoadedEnsemble`, with the same methods).

    Methods:

    - ``classify(texts) -> list[dict]``: each ``{"label": str, "probabilities": {label: float}}``, all
      texts in one batch (what ``rnnkit classify predict`` and the server's ``/v1/classify`` give).
    - ``predict(texts) -> Tensor``: the class probabilities ``(N, C)``, columns in ``labels`` order.
    - ``encode(texts)``: the token ids the model reads.

    Attributes: ``model``, ``inputs`` (vocabulary and tokenisation), ``labels``, ``config``, ``checkpoint``.
    """

    model: SequenceClassifier
    inputs: TextInputs
    labels: list[str]
    config: ClassifierConfig
    checkpoint: str

    @property
    def kind(self) -> str:
        return self.inputs.kind

    def encode(self, texts: list[str]) -> Encoded:
        return self.inputs.encode(a_list(texts, "encode", "texts"))

    def predict(self, texts: list[str]) -> Tensor:
        """Class probabilities ``(N, C)``."""
        return predict_encoded(self.model, self.encode(a_list(texts, "predict", "texts")))

    def classify(self, texts: list[str]) -> list[dict]:
        """Each text's label and every label's probability: :func:`classify_texts`."""
        return classify_texts(self, a_list(texts, "classify", "texts"))


def saved_classifier_config(run_dir: Path) -> ClassifierConfig:
    run_dir = Path(run_dir)
    if is_ensemble(run_dir):
        return ensemble_config(run_dir, read_ensemble(run_dir))
    if stopped_in_pretraining(run_dir):
        run_dir = run_dir / PRETRAIN
    return task_config(run_dir, "last", TASK, ClassifierConfig, "a classifier")[1]


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
    except (KeyError, TypeError, ValueError) as exc:
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
