r"""Sequence tagging with a bidirectional RNN: named entities and Chinese word segmentation.

Every token's tag depends on both sides (the tutorial's example: a name that only later words make
clear), so the tagger reads the sentence in both directions and scores each tag at each step from the
joined states, :math:`e_t = W [\overrightarrow{h}_t ; \overleftarrow{h}_t] + b`. With ``crf`` (the
default) a :class:`rnnkit.nn.crf.CRF` on top scores whole tag sequences (B-PER may not follow B-LOC's
I-LOC...), trained by its forward algorithm and decoded by Viterbi; without it each step is a softmax.

Two input formats: ``conll`` (``token<TAB>tag`` lines, blank line between sentences) and ``segmented``
(words separated by spaces, turned into B/M/E/S character tags and back). Tokens are characters when
the text is Chinese or Japanese, else words (lower-cased for the vocabulary).

Character tokens also see their two neighbouring bigrams (``model.bigram_size``, on by default): the
input at step t is :math:`[E_c(c_t); E_b(c_{t-1}c_t); E_b(c_t c_{t+1})]`, with sentence-boundary marks at
both ends. Bigrams are the strongest single feature for word segmentation (a two-character word is
often one frequent bigram); bigrams seen fewer than ``data.bigram_min_count`` times map to ``<unk>``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.config import check_rnn_fields
from rnnkit.data.buckets import BucketStream, pad, padded_width
from rnnkit.data.seqlabel import Sentences, entity_scores, read_sentences, segmentation_scores
from rnnkit.data.table import TokenVocab, bigram_keys, choose_tokens, token_key
from rnnkit.errors import CheckpointError, DataError
from rnnkit.nn import Recurrent
from rnnkit.nn.bigrams import embed_with_bigrams
from rnnkit.nn.crf import CRF
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import (
    load_weights,
    task_config,
)
from rnnkit.train.config import TrainConfig, task_training
from rnnkit.train.task import Setup, Task, TaskSpec

log = logging.getLogger("rnnkit")
TASK = "tag"


@dataclass(kw_only=True)
class TaggerModelConfig:
    cell: str = "lstm"
    embedding_size: int = 128
    hidden_size: int = 128
    """Units per direction."""
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.2
    crf: bool = True
    """A CRF output layer (Viterbi decoding) instead of a softmax at each step."""
    bigram_size: int = 64
    """Embedding size of each character's left and right bigrams; 0: none. Character tokens only."""

    def __post_init__(self) -> None:
        check_rnn_fields(self, positive=("embedding_size", "hidden_size", "num_layers"))
        if self.bigram_size < 0:
            raise ValueError(f"bigram_size: expected 0 or more, got {self.bigram_size}")


@dataclass(kw_only=True)
class TaggerDataConfig:
    train: str = ""
    val: str = ""
    """A validation file; empty: hold out val_fraction of the training sentences (by seed)."""
    format: str = "conll"
    """conll or segmented."""
    tokens: str = "auto"
    """auto, char or word."""
    val_fraction: float = 0.05
    max_tokens: int = 200
    """Longer sentences are cut into pieces of at most this many tokens."""
    min_count: int = 1
    max_vocab: int = 50_000
    bigram_min_count: int = 2
    max_bigrams: int = 200_000
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        if self.format not in ("conll", "segmented"):
            raise ValueError(f"format: expected conll or segmented, got {self.format!r}")
        if self.tokens not in ("auto", "char", "word"):
            raise ValueError(f"tokens: expected auto, char or word, got {self.tokens!r}")
        if not 0 < self.val_fraction < 0.9:
            raise ValueError(f"val_fraction: expected a fraction in (0, 0.9), got {self.val_fraction}")
        for name in ("max_tokens", "min_count", "max_vocab", "bigram_min_count", "max_bigrams"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")


@dataclass(kw_only=True)
class TaggerConfig:
    model: TaggerModelConfig = field(default_factory=TaggerModelConfig)
    data: TaggerDataConfig = field(default_factory=TaggerDataConfig)
    train: TrainConfig = field(
        default_factory=task_training(batch_size=32, warmup_steps=50, eval_interval=300)
    )


# -------------------------------------------------------------------------------------------------
# the model


class Tagger(nn.Module):
    """Embedding (+ bigram embeddings) -> (bi)RNN -> per-step tag scores -> CRF (or softmax).

    ``forward(ids, lengths, tags, bigrams)`` is the summed loss of the batch; ``decode(ids, lengths,
    bigrams)`` the tags. ``ids`` is (N, T); ``bigrams`` (N, T + 1) holds each sentence's n + 1 bigram ids
    (boundary, c1), (c1, c2), ..., (cn, boundary), so step t reads bigrams t and t + 1. It is required
    when the model was made with ``bigram_vocab > 0``.
    """

    def __init__(
        self, vocab_size: int, num_tags: int, config: TaggerModelConfig, bigram_vocab: int = 0
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
        self.head = nn.Linear(self.rnn.output_size, num_tags)
        self.crf = CRF(num_tags) if config.crf else None

    def emissions(self, ids: Tensor, lengths: Tensor, bigrams: Tensor | None = None) -> Tensor:
        x = embed_with_bigrams(self.embedding, self.bigram, ids, bigrams, "tagger")
        out, _ = self.rnn(self.dropout(x), lengths=lengths)
        return self.head(self.dropout(out)).float()  # (N, T, K)

    def forward(self, ids: Tensor, lengths: Tensor, tags: Tensor, bigrams: Tensor | None = None) -> Tensor:
        """The summed negative log-likelihood of the batch's tags (per sentence with a CRF)."""
        return self.loss_of(self.emissions(ids, lengths, bigrams), lengths, tags)

    def loss_of(self, scores: Tensor, lengths: Tensor, tags: Tensor) -> Tensor:
        if self.crf is not None:
            return self.crf(scores, tags, lengths).sum()
        mask = torch.arange(scores.shape[1], device=scores.device)[None] < lengths.to(scores.device)[:, None]
        return F.cross_entropy(scores[mask], tags[mask], reduction="sum")

    @torch.no_grad()
    def decode(self, ids: Tensor, lengths: Tensor, bigrams: Tensor | None = None) -> list[list[int]]:
        return self.decode_scores(self.emissions(ids, lengths, bigrams), lengths)

    def decode_scores(self, scores: Tensor, lengths: Tensor) -> list[list[int]]:
        if self.crf is not None:
            return self.crf.decode(scores, lengths)
        best = scores.argmax(-1).tolist()
        return [row[:n] for row, n in zip(best, lengths.tolist(), strict=True)]


# -------------------------------------------------------------------------------------------------
# data


def chunk(sentences: Sentences, limit: int) -> Sentences:
    """Cut sentences longer than ``limit`` tokens into pieces (their tags stay with their tokens)."""
    tokens, tags = [], []
    for words, labels in zip(sentences.tokens, sentences.tags, strict=True):
        for start in range(0, len(words), limit):
            tokens.append(words[start : start + limit])
            tags.append(labels[start : start + limit])
    return Sentences(tokens, tags)


@dataclass
class Inputs:
    """What the tagger reads for a set of sentences: token ids and (optionally) bigram ids."""

    vocab: TokenVocab
    kind: str
    bigrams: TokenVocab | None = None

    def encode(self, words: list[str]) -> tuple[list[int], list[int] | None]:
        ids = self.vocab.encode([token_key(w, self.kind) for w in words])
        pairs = self.bigrams.encode(bigram_keys(words, self.kind)) if self.bigrams is not None else None
        return ids, pairs


@dataclass
class EncodedTags:
    ids: list[list[int]]
    tags: list[list[int]]
    bigrams: list[list[int]] | None = None

    def batch(self, rows: list[int]) -> tuple[Tensor, Tensor, Tensor | None]:
        """Padded (ids, lengths, bigrams) of the given rows, :func:`padded_width` wide (the bigrams,
        which join each token to both neighbours, one more)."""
        width = padded_width(max(len(self.ids[i]) for i in rows))
        ids, lengths = pad([self.ids[i] for i in rows], width)
        bigrams = pad([self.bigrams[i] for i in rows], width + 1)[0] if self.bigrams is not None else None
        return ids, lengths, bigrams

    def tag_batch(self, rows: list[int], width: int) -> Tensor:
        return pad([self.tags[i] for i in rows], width)[0]


def encode(sentences: Sentences, inputs: Inputs, tag_index: dict[str, int], path: str) -> EncodedTags:
    ids, tags, bigrams = [], [], []
    for words, labels in zip(sentences.tokens, sentences.tags, strict=True):
        unknown = [t for t in labels if t not in tag_index]
        if unknown:
            raise DataError(
                f"{path}: tag {unknown[0]!r} was not seen in training (tags: {', '.join(tag_index)})"
            )
        row, pairs = inputs.encode(words)
        ids.append(row)
        bigrams.append(pairs)
        tags.append([tag_index[t] for t in labels])
    return EncodedTags(ids, tags, bigrams if inputs.bigrams is not None else None)


def sort_tags(tags: set[str]) -> list[str]:
    """O first, then by entity type and position (B before I/M/E), so the list reads well."""
    order = {"O": 0, "B": 1, "M": 2, "I": 2, "E": 3, "S": 4}

    def key(tag: str):
        head, _, kind = tag.partition("-")
        return (tag != "O", kind, order.get(head, 9), tag)

    return sorted(tags, key=key)


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
        total, tokens = 0.0, 0
        device = next(model.parameters()).device
        order = sorted(range(len(self.val.ids)), key=lambda i: len(self.val.ids[i]))
        pred: list[list[int]] = [[] for _ in order]
        with torch.no_grad():
            for start in range(0, len(order), 128):
                rows = order[start : start + 128]
                ids, lengths, bigrams = self.val.batch(rows)
                tags = self.val.tag_batch(rows, ids.shape[1])
                scores = model.emissions(ids.to(device), lengths, to_device(bigrams, device))
                total += float(model.loss_of(scores, lengths, tags.to(device)))
                tokens += int(lengths.sum())
                for i, found_tags in zip(rows, model.decode_scores(scores, lengths), strict=True):
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


def to_device(x: Tensor | None, device) -> Tensor | None:
    return x.to(device) if x is not None else None


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


def score(fmt: str, tags: list[str], gold: list[list[int]], pred: list[list[int]]) -> dict[str, float]:
    """Word-segmentation scores for ``segmented`` data, entity scores (seqeval) for ``conll``."""
    names = lambda rows: [[tags[t] for t in row] for row in rows]  # noqa: E731
    if fmt == "segmented":
        return segmentation_scores(names(gold), names(pred))
    return entity_scores(names(gold), names(pred))


# -------------------------------------------------------------------------------------------------
# training, loading


def load_sentences(config: TaggerConfig) -> tuple[Sentences, Sentences]:
    d = config.data
    train = read_sentences(Path(d.train), d.format, d.encoding)
    if d.val:
        return train, read_sentences(Path(d.val), d.format, d.encoding)
    order = list(range(len(train.tokens)))
    random.Random(config.train.seed).shuffle(order)
    cut = max(1, int(len(order) * d.val_fraction))
    pick = lambda rows: Sentences([train.tokens[i] for i in rows], [train.tags[i] for i in rows])  # noqa: E731
    return pick(sorted(order[cut:])), pick(sorted(order[:cut]))


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
        inputs = Inputs(TokenVocab.build(docs, d.min_count, d.max_vocab), kind)
        if kind == "char" and config.model.bigram_size:
            pairs = (bigram_keys(s, kind) for s in train_sents.tokens)
            inputs.bigrams = TokenVocab.build(pairs, d.bigram_min_count, d.max_bigrams)
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
        bigrams = TokenVocab(saved["bigrams"]) if saved.get("bigrams") else None
        inputs = Inputs(TokenVocab(saved["vocab"]), saved["tokens"], bigrams)
        return inputs, saved["tags"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{where}: config.json lacks the vocabulary or tags ({exc})") from None


@dataclass
class LoadedTagger:
    model: Tagger
    inputs: Inputs
    tags: list[str]
    config: TaggerConfig
    checkpoint: str

    def tag(self, sentences: list[list[str]]) -> list[list[str]]:
        """Tags of each token of each sentence (long sentences are cut and joined back)."""
        limit = self.config.data.max_tokens
        rows = EncodedTags([], [], [] if self.inputs.bigrams is not None else None)
        owners = []
        for i, words in enumerate(sentences):
            for start in range(0, len(words), limit):
                ids, pairs = self.inputs.encode(words[start : start + limit])
                rows.ids.append(ids)
                if rows.bigrams is not None:
                    rows.bigrams.append(pairs)
                owners.append(i)
        out: list[list[str]] = [[] for _ in sentences]
        for owner, tags in zip(owners, predict_ids(self.model, rows), strict=True):
            out[owner] += [self.tags[t] for t in tags]
        return out


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
