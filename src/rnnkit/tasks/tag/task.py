"""The tagger's task for the trainer, its preparation, and the loaded tagger."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rnnkit.data.buckets import BucketStream
from rnnkit.data.items import a_list
from rnnkit.data.table import TEXT_SPECIALS, bigram_keys, choose_tokens, token_key
from rnnkit.data.vocab import TokenTable
from rnnkit.errors import CheckpointError
from rnnkit.tasks.tag.config import TASK, TaggerConfig
from rnnkit.tasks.tag.data import EncodedTags, Inputs, chunk, encode, load_sentences, sort_tags
from rnnkit.tasks.tag.metrics import score, tag_texts
from rnnkit.tasks.tag.model import Tagger
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import (
    load_weights,
    task_config,
)
from rnnkit.train.hardware import to_device
from rnnkit.train.task import Setup, Task, TaskSpec

log = logging.getLogger("rnnkit")


# -------------------------------------------------------------------------------------------------
# the trainer's task


class TagTask(Task):
    name = TASK
    unit = "tokens"
    selection = ("val_f1", "max")  # the best checkpoint: highest validation F1

    def __init__(self, config: TaggerConfig, train: EncodedTags, val: EncodedTags, inputs: Inputs,
                 tags: list[str], world_size: int = 1) -> None:  # fmt: skip
        self.config, self.train, self.val = config, train, val
        self.inputs, self.tags = inputs, tags
        t = config.train
        lengths = [len(x) for x in train.ids]
        self.stream = BucketStream(lengths, t.batch_size * world_size, t.seed, min_rows=world_size)

    def next_batch(self):
        rows = self.stream.next_rows()
        mine = self.shard(rows)
        ids, lengths, bigrams = self.train.batch(mine)
        tokens = lambda rows: sum(len(self.train.ids[i]) for i in rows)  # noqa: E731
        share = self.share(tokens(mine), tokens(rows))
        return (ids, lengths, self.train.tag_batch(mine, ids.shape[1]), bigrams, share), False

    def data_state(self) -> dict:
        return self.stream.state()

    def load_data_state(self, state: dict) -> None:
        self.stream.load_state(state)

    def training_loss(self, model: nn.Module, batch, carry):
        ids, lengths, tags, bigrams, share = batch
        tokens = int(lengths.sum())
        return model(ids, lengths, tags, bigrams) / tokens * share, None, tokens

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Loss and F1 from one pass: the emissions of each batch give both."""
        from typing import cast

        tagger = cast(Tagger, model)  # the model SPEC.build_model made for this task
        total, tokens = 0.0, 0
        device = next(model.parameters()).device
        order = sorted(range(len(self.val.ids)), key=lambda i: len(self.val.ids[i]))
        pred: list[list[int]] = [[] for _ in order]
        with torch.no_grad():
            for start in range(0, len(order), 128):
                rows = order[start : start + 128]
                ids, lengths, bigrams = self.val.batch(rows)
                tags = self.val.tag_batch(rows, ids.shape[1])
                scores = tagger.emissions(ids.to(device), lengths, to_device(bigrams, device))
                total += float(tagger.loss_of(scores, lengths, tags.to(device)))
                tokens += int(lengths.sum())
                for i, found_tags in zip(rows, tagger.decode_scores(scores, lengths), strict=True):
                    pred[i] = found_tags
        found = score(self.config.data.format, self.tags, self.val.tags, pred)
        return {"val_loss": total / tokens, "val_f1": found["f1"]}

    def on_evaluate(self, model: nn.Module, step: int) -> None:
        return None

    def checkpoint_extras(self) -> dict:
        return {
            "vocab": self.inputs.vocab.tokens,
            "bigrams": self.inputs.bigrams.tokens if self.inputs.bigrams is not None else None,
            "tags": self.tags,
            "tokens": self.inputs.kind,
        }


def predict_ids(model: Tagger, rows: EncodedTags, batch_size: int = 128) -> list[list[int]]:
    """The decoded tags of each encoded sentence (``rows.tags`` is not read)."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(rows.ids)), key=lambda i: len(rows.ids[i]))
    out: list[list[int]] = [[] for _ in rows.ids]
    for start in range(0, len(order), batch_size):
        chunk_rows = order[start : start + batch_size]
        ids, lengths, bigrams = rows.batch(chunk_rows)
        found = model.decode(ids.to(device), lengths, to_device(bigrams, device))
        for i, tags in zip(chunk_rows, found, strict=True):
            out[i] = tags
    return out


# -------------------------------------------------------------------------------------------------
# training, loading


def prepare_task(config: TaggerConfig, setup: Setup) -> TagTask:
    """Read the sentences, build the vocabulary and tag set (or read back a resumed run's), encode."""
    d = config.data
    train_sents, val_sents = load_sentences(config)
    train_sents = chunk(train_sents, d.max_tokens)
    if setup.resumed is not None:
        inputs, tags = saved_inputs(setup.resumed.config, setup.out)
    else:
        kind = d.tokens if d.tokens != "auto" else choose_tokens(" ".join(s) for s in train_sents.tokens)
        tags = sort_tags({t for sentence in train_sents.tags for t in sentence})
        docs = ([token_key(w, kind) for w in s] for s in train_sents.tokens)
        inputs = Inputs(TokenTable.build(docs, TEXT_SPECIALS, d.min_count, d.max_vocab), kind)
        if kind == "char" and config.model.bigram_size:
            pairs = (bigram_keys(s, kind) for s in train_sents.tokens)
            inputs.bigrams = TokenTable.build(pairs, TEXT_SPECIALS, d.bigram_min_count, d.max_bigrams)
    index = {t: i for i, t in enumerate(tags)}
    train = encode(train_sents, inputs, index, d.train)
    val = encode(chunk(val_sents, d.max_tokens), inputs, index, d.val or d.train)
    task = TagTask(config, train, val, inputs, tags, world_size=setup.world_size)
    bigrams = f", {len(inputs.bigrams):,} bigrams" if inputs.bigrams is not None else ""
    log.info(
        "data: %s training and %s validation sentences, %d tags, %s tokens, vocabulary of %s%s",
        f"{len(train.ids):,}", f"{len(val.ids):,}", len(tags), inputs.kind, f"{len(inputs.vocab):,}", bigrams,
    )  # fmt: skip
    return task


def bigram_size_of(inputs: Inputs) -> int:
    return len(inputs.bigrams) if inputs.bigrams is not None else 0


def saved_inputs(saved: dict, where) -> tuple[Inputs, list[str]]:
    """The vocabularies and tags a checkpoint's config.json records."""
    try:
        bigrams = TokenTable(saved["bigrams"], TEXT_SPECIALS) if saved.get("bigrams") else None
        inputs = Inputs(TokenTable(saved["vocab"], TEXT_SPECIALS), saved["tokens"], bigrams)
        return inputs, saved["tags"]
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise CheckpointError(f"{where}: config.json lacks the vocabulary or tags ({exc})") from None


@dataclass
class LoadedTagger:
    """A trained tagger, as ``rnnkit.load(run_dir)`` returns it.

    Methods:

    - ``tag(sentences) -> list[list[str]]``: the tag of each token of each tokenised sentence.
    - ``tag_texts(texts) -> list[dict]``: raw texts, tokenised as the run tokenised its training data;
      each ``{"tokens": [str], "tags": [str]}`` plus ``"words": [str]`` for a word-segmentation run or
      ``"entities": [{"type", "text", "start", "end"}]`` (token indices, end exclusive) for a conll run
      (what ``rnnkit tag predict`` and the server's ``/v1/tag`` give).

    Attributes: ``model``, ``inputs`` (vocabularies and tokenisation), ``tags``, ``config``, ``checkpoint``.
    """

    model: Tagger
    inputs: Inputs
    tags: list[str]
    config: TaggerConfig
    checkpoint: str

    def tag(self, sentences: list[list[str]]) -> list[list[str]]:
        """Tags of each token of each sentence (long sentences are cut and joined back)."""
        for words in a_list(sentences, "tag", "sentences (each a list of tokens)"):
            a_list(words, "tag", "tokens for each sentence (tag_texts takes raw texts)")
        limit = self.config.data.max_tokens
        rows = EncodedTags([], [], [] if self.inputs.bigrams is not None else None)
        owners = []
        for i, words in enumerate(sentences):
            for start in range(0, len(words), limit):
                ids, pairs = self.inputs.encode(words[start : start + limit])
                rows.ids.append(ids)
                if rows.bigrams is not None and pairs is not None:  # both or neither: self.inputs.bigrams
                    rows.bigrams.append(pairs)
                owners.append(i)
        out: list[list[str]] = [[] for _ in sentences]
        for owner, tags in zip(owners, predict_ids(self.model, rows), strict=True):
            out[owner] += [self.tags[t] for t in tags]
        return out

    def tag_texts(self, texts: list[str]) -> list[dict]:
        """Tokens, tags and the words or entities of raw texts (:func:`.metrics.tag_texts`)."""
        return tag_texts(self, a_list(texts, "tag_texts", "texts"))


def saved_tagger_config(run_dir: Path) -> TaggerConfig:
    return task_config(run_dir, "last", TASK, TaggerConfig, "a tagger")[1]


def load_tagger(run_dir: Path, which: str = "best", device: str = "cpu") -> LoadedTagger:
    loaded, config = task_config(run_dir, which, TASK, TaggerConfig, "a tagger")
    inputs, tags = saved_inputs(loaded.config, loaded.folder)
    model = build_checked(
        lambda: Tagger(len(inputs.vocab), len(tags), config.model, bigram_size_of(inputs)), checkpoint=loaded
    )
    load_weights(model, loaded)
    model.to(device).eval()
    return LoadedTagger(model, inputs, tags, config, loaded.name)


SPEC = TaskSpec(
    name=TASK,
    config=TaggerConfig,
    prepare=prepare_task,
    build_model=lambda task: Tagger(
        len(task.inputs.vocab), len(task.tags), task.config.model, bigram_size_of(task.inputs)
    ),
    load=load_tagger,
    loaded=LoadedTagger,
)
"""The tagger in the registry (``rnnkit.tasks.TASKS["tag"]``)."""
