r"""Look and tell (看图说话): a CNN reads the picture, an RNN writes the caption.

The tutorial's CNN + RNN: the picture's feature vector :math:`v = \mathrm{CNN}(I)` enters the RNN at the
first step only,

.. math::
    h_1 = f(W_{hx} x_1 + W_{hh} h_0 + b + W_{hi} v), \qquad h_t = f(W_{hx} x_t + W_{hh} h_{t-1} + b)
    \quad (t > 1),

so every later word knows the picture only through the hidden state. Implemented exactly so: the RNN's
input at step t is :math:`[x_t; v]` at t = 1 and :math:`[x_t; 0]` after, and :math:`W_{hi}` is the block
of the input weights that meets :math:`v` (``inject="every-step"`` feeds :math:`v` at every step
instead, for comparison).

The picture vector keeps where things are: the CNN's last feature map is pooled to a 4 x 4 grid
(``grid_size``) and flattened before the projection, which is layer-normalised. A CNN trained from
scratch learns slowly from the caption loss alone when the picture enters at the first step only (its
gradient comes back through every later step's state); a second loss on v, predicting which words the
picture's captions use (``word_loss``, a multi-label "bag of words"), gives it a direct signal. The
decoder still sees the picture at the first step only.

The CNN is a small residual network trained from scratch (no pretrained weights can be downloaded
here); ``backbone="package.module:factory"`` builds another one (a torchvision or timm model, with
``backbone_weights`` read from a local file), whose classifier is removed. Decoding is greedy or beam
search with length normalisation; corpus BLEU-1..4 is sacrebleu's, against every reference caption of
each picture. Splits are by picture, never by caption.
"""

from __future__ import annotations

import importlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.config import check_rnn_fields, from_dict
from rnnkit.data.buckets import BucketStream, pad
from rnnkit.data.images import Captions, WordVocab, load_image, read_captions
from rnnkit.errors import CheckpointError, DataError, UsageError
from rnnkit.generate import select_state
from rnnkit.nn import Recurrent
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import (
    load_weights,
    task_config,
)
from rnnkit.train.config import TrainConfig, task_training
from rnnkit.train.rundir import no_symlink
from rnnkit.train.task import Setup, Task, TaskSpec

log = logging.getLogger("rnnkit")
TASK = "caption"
INJECT = ("first-step", "every-step")


@dataclass(kw_only=True)
class CaptionModelConfig:
    cell: str = "lstm"
    embedding_size: int = 128
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.2
    image_size: int = 64
    """Pictures are scaled and centre-cropped to this many pixels a side."""
    cnn_width: int = 16
    """Channels of the first stage of the residual CNN (doubled at each of its 4 stages)."""
    image_feature_size: int = 256
    """Size of the projected picture vector W v (the part of the first input that is the picture)."""
    grid_size: int = 4
    """The CNN's last feature map is average-pooled to grid_size x grid_size cells and flattened before
    the projection, so v keeps where things are (1: global average pooling, which keeps what is in the
    picture but not where: "red circle left of blue square" and its mirror give the same v)."""
    inject: str = "first-step"
    """first-step (the tutorial's CNN+RNN) or every-step."""
    word_loss: float = 1.0
    """Weight of the picture's bag-of-words loss: v also predicts which words the picture's captions use
    (one sigmoid per word, from v alone). A direct signal for the CNN trained from scratch; 0: off."""
    backbone: str = ""
    """package.module:factory building another CNN; empty: the residual CNN written here."""
    backbone_weights: str = ""
    """A local state-dict file for the backbone (nothing is downloaded)."""

    def __post_init__(self) -> None:
        check_rnn_fields(self, positive=("embedding_size", "hidden_size", "num_layers", "image_size"))
        if self.word_loss < 0:
            raise ValueError(f"word_loss: expected 0 or more, got {self.word_loss}")
        if self.inject not in INJECT:
            raise ValueError(f"inject: expected first-step or every-step, got {self.inject!r}")
        if self.cnn_width < 1 or self.image_feature_size < 1 or self.grid_size < 1 or self.image_size < 16:
            raise ValueError("cnn_width, image_feature_size and grid_size: positive; image_size: 16 or more")


@dataclass(kw_only=True)
class CaptionDataConfig:
    images: str = ""
    captions: str = ""
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    """Shares of the pictures (never of the captions) held out for validation and for the test."""
    min_count: int = 2
    """Words seen fewer times in the training captions read as <unk>."""
    max_words: int = 30
    flip: bool = False
    """Mirror training pictures at random (off: it would swap "left of" and "right of")."""

    def __post_init__(self) -> None:
        if not (0 < self.val_fraction < 0.5 and 0 < self.test_fraction < 0.5):
            raise ValueError("val_fraction and test_fraction: expected fractions in (0, 0.5)")
        if self.min_count < 1 or self.max_words < 1:
            raise ValueError("min_count and max_words: expected positive integers")


@dataclass(kw_only=True)
class CaptionConfig:
    model: CaptionModelConfig = field(default_factory=CaptionModelConfig)
    data: CaptionDataConfig = field(default_factory=CaptionDataConfig)
    train: TrainConfig = field(
        default_factory=task_training(batch_size=64, warmup_steps=100, eval_interval=300)
    )


# -------------------------------------------------------------------------------------------------
# the CNN


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x))


class SmallResNet(nn.Module):
    """A stride-2 stem and four stages of two residual blocks (width w, 2w, 4w, 8w; strides 1, 2, 2, 2):
    ``(N, 3, S, S)`` -> a feature map ``(N, 8w, S/16, S/16)``; a 64-pixel picture ends as a 4 x 4 grid.
    Small enough to train from scratch on two CPU cores."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        stages, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            stages += [ResidualBlock(cin, cout, stride), ResidualBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))


def build_backbone(spec: str, weights: str, image_size: int) -> tuple[nn.Module, int, bool]:
    """``package.module:factory`` -> (the network without its classifier, its channels C, whether it
    gives a feature map ``(N, C, h, w)`` rather than a vector ``(N, C)``)."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise UsageError(f"--backbone: expected package.module:factory, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--backbone: cannot import {spec} ({exc})") from None
    net = factory()
    if weights:
        try:
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except (OSError, RuntimeError) as exc:
            raise UsageError(f"--backbone-weights: {weights}: {str(exc).splitlines()[0]}") from None
    for head in ("fc", "classifier", "head"):
        if isinstance(getattr(net, head, None), nn.Module):
            setattr(net, head, nn.Identity())
            break
    with torch.no_grad():
        was = net.training
        net.eval()
        out = net(torch.zeros(1, 3, image_size, image_size))
        net.train(was)
    if out.dim() not in (2, 4):
        raise UsageError(f"--backbone: {spec} gives a {out.dim()}-d output; expected (N, C) or (N, C, h, w)")
    return net, int(out.shape[1]), out.dim() == 4


# -------------------------------------------------------------------------------------------------
# the captioner


MEAN, STD = 0.5, 0.25


class Captioner(nn.Module):
    """CNN -> picture vector -> RNN (the picture at the first step) -> words."""

    def __init__(self, vocab_size: int, config: CaptionModelConfig) -> None:
        super().__init__()
        self.config = config
        if config.backbone:
            found = build_backbone(config.backbone, config.backbone_weights, config.image_size)
            self.cnn, size, spatial = found
        else:
            self.cnn, size, spatial = SmallResNet(config.cnn_width), config.cnn_width * 8, True
        # a backbone that pools by itself gives one cell, whatever grid_size says
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(config.grid_size), nn.Flatten()) if spatial else None
        # layer-normalised: the raw projection of the session-3 model had grown to norms of 50-85 and its
        # pictures fell into ~4 clusters of v (the effect of the norm alone was not measured apart)
        self.project = nn.Sequential(
            nn.Linear(size * (config.grid_size**2 if spatial else 1), config.image_feature_size),
            nn.LayerNorm(config.image_feature_size),
        )
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=0)
        self.rnn = Recurrent(
            config.embedding_size + config.image_feature_size,
            config.hidden_size,
            cell=config.cell,
            num_layers=config.num_layers,
            dropout=config.dropout,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, vocab_size)
        self.bag = nn.Linear(config.image_feature_size, vocab_size) if config.word_loss > 0 else None

    def features(self, images: Tensor) -> Tensor:
        """``(N, 3, S, S)`` uint8 -> ``(N, image_feature_size)``: the picture vector the RNN sees."""
        x = (images.float() / 255.0 - MEAN) / STD
        found = self.cnn(x)
        return self.project(self.pool(found) if self.pool is not None else found)

    def image_inputs(self, v: Tensor, steps: int, first: bool = True) -> Tensor:
        """``(N, steps, P)``: v at the first step (or every step), zeros elsewhere."""
        if self.config.inject == "every-step":
            return v[:, None].expand(-1, steps, -1)
        out = v.new_zeros(v.shape[0], steps, v.shape[1])
        if first:
            out[:, 0] = v
        return out

    def forward(self, images: Tensor, inputs: Tensor, lengths: Tensor, *, words: bool = False):
        """Teacher forcing: ``inputs`` ``(N, T)`` starts with ``<start>``; logits ``(N, T, V)``. With
        ``words``, also the word-bag logits ``(N, V)`` (None without a bag head): training's one call."""
        v = self.features(images)
        logits = self.teacher(v, inputs, lengths)
        if not words:
            return logits
        return logits, self.bag(v) if self.bag is not None else None

    def teacher(self, v: Tensor, inputs: Tensor, lengths: Tensor) -> Tensor:
        """:meth:`forward` from the picture vectors ``v`` ``(N, P)``."""
        x = torch.cat([self.dropout(self.embedding(inputs)), self.image_inputs(v, inputs.shape[1])], dim=-1)
        out, _ = self.rnn(x, lengths=lengths)
        return self.head(self.dropout(out))

    def step(self, ids: Tensor, v: Tensor, state, first: bool):
        """One word for each of N captions: ``ids`` ``(N,)`` -> logits ``(N, V)`` and the new state."""
        x = torch.cat([self.embedding(ids)[:, None], self.image_inputs(v, 1, first)], dim=-1)
        out, state = self.rnn(x, state=state)
        return self.head(out[:, 0]), state

    @torch.no_grad()
    def greedy(self, images: Tensor, max_words: int) -> list[list[int]]:
        v = self.features(images)
        ids = torch.ones(v.shape[0], dtype=torch.long, device=v.device)
        state, out, done = None, [], torch.zeros_like(ids, dtype=torch.bool)
        for t in range(max_words + 1):
            logits, state = self.step(ids, v, state, first=t == 0)
            ids = logits.argmax(-1)
            out.append(ids)
            done |= ids == 2
            if bool(done.all()):
                break
        rows = torch.stack(out, 1).tolist()
        return [row[: row.index(2)] if 2 in row else row for row in rows]

    @torch.no_grad()
    def beams(self, images: Tensor, beam_size: int, max_words: int, alpha: float = 1.0) -> list[list[int]]:
        """:meth:`beam` for a batch of pictures at once: the N x K hypotheses are one batch of the RNN.

        Each picture keeps the K best continuations of its live hypotheses (a finished one, ending in
        ``<end>``, leaves its slot empty, scored -inf), and stops when K have finished or none is left;
        the result is the same as :meth:`beam` picture by picture (tested).
        """
        v = self.features(images)
        n, k, device = v.shape[0], beam_size, v.device
        scores = torch.full((n, k), float("-inf"), device=device)
        scores[:, 0] = 0.0  # one empty hypothesis per picture to start from
        tokens = torch.empty(n, k, 0, dtype=torch.long, device=device)
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
        done = [False] * n
        state, rows = None, torch.arange(n, device=device)[:, None]
        v = v.repeat_interleave(k, 0)  # picture i's vector for each of its K hypotheses
        for t in range(max_words + 1):
            prev = tokens[:, :, -1].reshape(-1) if t else torch.ones(n * k, dtype=torch.long, device=device)
            logits, state = self.step(prev, v, state, first=t == 0)
            logp = torch.log_softmax(logits.float(), -1).view(n, k, -1)
            vocab = logp.shape[-1]
            total = (scores[:, :, None] + logp).view(n, -1)  # (N, K*V)
            best, flat = total.topk(min(k, total.shape[1]), dim=-1)
            parent, word = flat // vocab, flat % vocab
            tokens = torch.cat([tokens[rows, parent], word[:, :, None]], dim=-1)
            ended = (word == 2) & torch.isfinite(best)
            for i, j in ended.nonzero().tolist():
                if not done[i]:
                    ids = tokens[i, j].tolist()
                    finished[i].append((float(best[i, j]) / len(ids) ** alpha, ids[:-1]))
            scores = best.masked_fill(ended, float("-inf"))
            alive = torch.isfinite(scores).any(1).tolist()
            done = [d or len(f) >= k or not a for d, f, a in zip(done, finished, alive, strict=True)]
            if all(done):
                break
            state = select_state(state, (rows * k + parent).reshape(-1))
        out = []
        for i in range(n):
            if not finished[i]:  # none ended within max_words: the live ones, by the same measure
                live = [(float(s) / max(1, tokens.shape[-1]) ** alpha, tokens[i, j].tolist())
                        for j, s in enumerate(scores[i].tolist()) if s != float("-inf")]  # fmt: skip
                finished[i] = live
            out.append(max(finished[i], key=lambda f: f[0])[1])
        return out

    @torch.no_grad()
    def beam(self, image: Tensor, beam_size: int, max_words: int, alpha: float = 1.0) -> list[int]:
        """The best caption of one picture ``(1, 3, S, S)`` by log P / length^alpha."""
        v = self.features(image)
        beams: list[tuple[float, list[int]]] = [(0.0, [])]
        state = None
        finished: list[tuple[float, list[int]]] = []
        for t in range(max_words + 1):
            prev = torch.tensor([b[1][-1] if b[1] else 1 for b in beams], device=v.device)
            logits, state = self.step(prev, v.expand(len(beams), -1), state, first=t == 0)
            logp = torch.log_softmax(logits.float(), -1)
            candidates = []
            for i, (score, ids) in enumerate(beams):
                values, index = logp[i].topk(min(beam_size, logp.shape[-1]))
                candidates += [
                    (score + s, [*ids, j], i) for s, j in zip(values.tolist(), index.tolist(), strict=True)
                ]
            candidates.sort(key=lambda c: -c[0])
            beams, parents = [], []
            for score, ids, parent in candidates[:beam_size]:
                if ids[-1] == 2:
                    finished.append((score / len(ids) ** alpha, ids[:-1]))
                else:
                    beams.append((score, ids))
                    parents.append(parent)
            if not beams or len(finished) >= beam_size:
                break
            state = select_state(state, torch.tensor(parents, device=v.device))
        if not finished:
            finished = [(score / max(1, len(ids)) ** alpha, ids) for score, ids in beams]
        return max(finished, key=lambda f: f[0])[1]


# -------------------------------------------------------------------------------------------------
# data and scores


@dataclass
class Split:
    names: list[str]
    images: Tensor
    """``(N, 3, S, S)`` uint8, one per picture."""
    references: list[list[str]]
    """Every caption of each picture."""


def split_pictures(
    captions: Captions, val: float, test: float, seed: int
) -> tuple[list[str], list[str], list[str]]:
    """(train, validation, test) picture names: the split is by picture (seeded), never by caption."""
    names = list(captions.images)
    if len(names) < 3:
        raise DataError(
            f"need at least 3 pictures to split into train, validation and test; got {len(names)}"
        )
    order = names[:]
    random.Random(seed).shuffle(order)
    n_test = max(1, round(len(order) * test))
    n_val = max(1, round(len(order) * val))
    test_set, val_set = set(order[:n_test]), set(order[n_test : n_test + n_val])
    pick = lambda keep: [n for n in names if n in keep]  # noqa: E731
    return [n for n in names if n not in test_set and n not in val_set], pick(val_set), pick(test_set)


def load_split(folder: Path, names: list[str], captions: Captions, size: int) -> Split:
    images = (
        torch.stack([load_image(Path(folder) / n, size) for n in names])
        if names
        else torch.zeros(0, 3, size, size)
    )
    return Split(names, images, [captions.captions[n] for n in names])


def bleu(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4 (sacrebleu, 0-100) of the hypotheses against every reference of each picture."""
    from sacrebleu.metrics import BLEU

    width = max(len(r) for r in references)
    streams = [[refs[i] if i < len(refs) else refs[0] for refs in references] for i in range(width)]
    return {f"bleu{n}": BLEU(max_ngram_order=n).corpus_score(hypotheses, streams).score for n in range(1, 5)}


def normalised(caption: str) -> str:
    """A caption as the model writes them: lower-case words, no punctuation."""
    from rnnkit.data.images import words

    return " ".join(words(caption))


# -------------------------------------------------------------------------------------------------
# the trainer's task


class CaptionTask(Task):
    name = TASK
    unit = "pictures"
    selection = ("val_bleu4", "max")

    def __init__(
        self, config: CaptionConfig, train: Split, val: Split, vocab: WordVocab, world_size: int = 1
    ) -> None:
        self.config, self.train, self.val, self.vocab = config, train, val, vocab
        limit = config.data.max_words
        self.pairs = [(i, vocab.encode(c)[:limit]) for i, refs in enumerate(train.references) for c in refs]
        self.pairs = [(i, ids) for i, ids in self.pairs if ids]
        if not self.pairs:
            raise DataError(f"{config.data.captions}: no training caption has a word")
        # the words each picture's captions use (<pad>, <start>, <end> and <unk> left out)
        self.bags = torch.zeros(len(train.references), len(vocab))
        for i, refs in enumerate(train.references):
            for caption in refs:
                self.bags[i, vocab.encode(caption)] = 1.0
        self.bags[:, :4] = 0.0
        t = config.train
        words = [len(ids) for _, ids in self.pairs]
        self.stream = BucketStream(words, t.batch_size * world_size, t.seed, min_rows=world_size)

    def next_batch(self):
        where = f"{self.config.train.seed}-{self.stream.epoch}-{self.stream.index}"
        rows = self.stream.next_rows()
        flips = [False] * len(rows)
        if self.config.data.flip:  # drawn for the global batch: each row's flip is the same on any rank
            rng = random.Random(where)
            flips = [rng.random() < 0.5 for _ in rows]
        mine = self.shard(list(zip(rows, flips, strict=True)))
        pictures = [self.pairs[r][0] for r, _ in mine]
        images = self.train.images[pictures]
        if self.config.data.flip:
            flipped = torch.tensor([f for _, f in mine])
            images = torch.where(flipped[:, None, None, None], images.flip(-1), images)
        inputs, lengths = pad([[1, *self.pairs[r][1]] for r, _ in mine])
        targets, _ = pad([[*self.pairs[r][1], 2] for r, _ in mine])
        bags = self.bags[pictures]
        words = lambda rows: sum(len(self.pairs[r][1]) + 1 for r in rows)  # noqa: E731 (with <end>)
        shares = torch.tensor(
            [self.share(words(r for r, _ in mine), words(rows)), self.share(len(mine), len(rows))]
        )
        return (images, inputs, lengths, targets, bags, shares), False

    def data_state(self) -> dict:
        return self.stream.state()

    def load_data_state(self, state: dict) -> None:
        self.stream.load_state(state)

    def training_loss(self, model: nn.Module, batch, carry):
        images, inputs, lengths, targets, bags, shares = batch
        logits, found = model(images, inputs, lengths, words=True)
        mask = torch.arange(inputs.shape[1], device=lengths.device)[None] < lengths[:, None]
        loss = F.cross_entropy(logits.float()[mask], targets[mask], reduction="sum")
        loss = loss / int(lengths.sum()) * shares[0]
        if found is not None:
            bag = F.binary_cross_entropy_with_logits(found.float(), bags)
            loss = loss + self.config.model.word_loss * bag * shares[1]
        return loss, None, int(images.shape[0])

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        hyps = describe(model, self.val.images, self.vocab, self.config.data.max_words)
        refs = [[normalised(r) for r in refs] for refs in self.val.references]
        found = bleu(hyps, refs)
        return {"val_bleu4": found["bleu4"], "val_bleu1": found["bleu1"]}

    def on_evaluate(self, model: nn.Module, step: int) -> None:
        return None

    def checkpoint_extras(self) -> dict:
        return {"vocab": self.vocab.tokens}


@torch.no_grad()
def describe(model: Captioner, images: Tensor, vocab: WordVocab, max_words: int, beam: int = 1,
             batch_size: int = 64) -> list[str]:  # fmt: skip
    """A caption for each picture (greedy, or beam search with ``beam`` > 1)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size].to(device)
        if beam > 1:
            out += [vocab.decode(ids) for ids in model.beams(chunk, beam, max_words)]
        else:
            out += [vocab.decode(ids) for ids in model.greedy(chunk, max_words)]
    model.train(was)
    return out


@torch.no_grad()
def picture_vectors(model: Captioner, images: Tensor, batch_size: int = 128) -> Tensor:
    model.eval()
    device = next(model.parameters()).device
    return torch.cat(
        [
            model.features(images[i : i + batch_size].to(device)).cpu()
            for i in range(0, len(images), batch_size)
        ]
    )


def baselines(model: Captioner, train: Split, test: Split) -> dict[str, list[str]]:
    """Two captions per test picture that need no RNN: the most common training caption, and the first
    caption of the training picture nearest by the CNN's picture vector (cosine)."""
    common = Counter(normalised(c) for refs in train.references for c in refs).most_common(1)[0][0]
    a = F.normalize(picture_vectors(model, test.images), dim=-1)
    b = F.normalize(picture_vectors(model, train.images), dim=-1)
    nearest = (a @ b.T).argmax(-1).tolist()
    return {
        "most_common": [common] * len(test.names),
        "nearest_picture": [normalised(train.references[j][0]) for j in nearest],
    }


# -------------------------------------------------------------------------------------------------
# training and loading


def prepare(config: CaptionConfig) -> tuple[Captions, list[str], list[str], list[str]]:
    d = config.data
    captions = read_captions(Path(d.captions))
    folder = Path(d.images)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of pictures")
    missing = [n for n in captions.images if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{folder / missing[0]}: no such image ({len(missing)} named in {d.captions} are missing)"
        )
    return (captions, *split_pictures(captions, d.val_fraction, d.test_fraction, config.train.seed))


def prepare_task(config: CaptionConfig, setup: Setup) -> CaptionTask:
    """Read the captions and split the pictures, build the vocabulary (or read back a resumed run's,
    whose backbone the caller must name) and load the pictures."""
    d, size = config.data, config.model.image_size
    captions, train_names, val_names, test_names = prepare(config)
    if setup.resumed is not None:
        saved = from_dict(CaptionConfig, setup.resumed.config["config"])
        trust_backbone(saved.model, config.model.backbone, setup.out)
        vocab = saved_vocab(setup.resumed)
    else:
        vocab = WordVocab.build([c for n in train_names for c in captions.captions[n]], d.min_count)
    train = load_split(Path(d.images), train_names, captions, size)
    val = load_split(Path(d.images), val_names, captions, size)
    task = CaptionTask(config, train, val, vocab, world_size=setup.world_size)
    log.info(
        "data: %d training, %d validation, %d test pictures; %d training captions; vocabulary of %d words",
        len(train_names), len(val_names), len(test_names), len(task.pairs), len(vocab),
    )  # fmt: skip
    return task


@dataclass
class LoadedCaptioner:
    model: Captioner
    vocab: WordVocab
    config: CaptionConfig
    checkpoint: str

    def describe(self, paths: list[Path], beam: int = 1) -> list[str]:
        images = torch.stack([load_image(p, self.config.model.image_size) for p in paths])
        return describe(self.model, images, self.vocab, self.config.data.max_words, beam)


def saved_caption_config(run_dir: Path) -> CaptionConfig:
    """The config to resume a run with; an external backbone is left for the caller to name again
    (see :func:`trust_backbone`)."""
    config = task_config(run_dir, "last", TASK, CaptionConfig, "a captioner")[1]
    config.model.backbone = ""
    return config


def saved_vocab(loaded) -> WordVocab:
    try:
        return WordVocab(loaded.config["vocab"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{loaded.folder}: config.json lacks the vocabulary ({exc})") from None


def trust_backbone(model: CaptionModelConfig, given: str, where: Path) -> None:
    """A checkpoint never names code that loading runs: a run trained with an external ``backbone``
    (code that its config names) is rebuilt only when the caller names that same backbone itself."""
    if model.backbone and given != model.backbone:
        raise CheckpointError(
            f"{where}: trained with the external backbone {model.backbone!r}; loading never imports code "
            "that a run folder names: pass --backbone with that value yourself if you trust it"
        )


def load_captioner(
    run_dir: Path, which: str = "best", device: str = "cpu", backbone: str = ""
) -> LoadedCaptioner:
    """A trained captioner; ``backbone``: the external backbone it was trained with, named by the caller
    (see :func:`trust_backbone`)."""
    loaded, config = task_config(run_dir, which, TASK, CaptionConfig, "a captioner")
    vocab = saved_vocab(loaded)
    trust_backbone(config.model, backbone, loaded.folder)
    config.model.backbone_weights = ""  # the checkpoint holds every weight; the file is not needed again
    model = build_checked(lambda: Captioner(len(vocab), config.model), checkpoint=loaded)
    load_weights(model, loaded)
    model.to(device).eval()
    return LoadedCaptioner(model, vocab, config, loaded.name)


def picture_grid(paths: list[Path], texts: list[str], out: Path, columns: int = 4) -> None:
    """A PNG page of pictures, each with its caption underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = (len(paths) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, path, text in zip(axes.flat, paths, texts, strict=False):
        with Image.open(path) as image:
            ax.imshow(image.convert("RGB"))
        ax.set_title("\n".join(_wrap(text, 34)), fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(no_symlink(out), dpi=100)
    plt.close(fig)


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines or [""]


SPEC = TaskSpec(
    name=TASK,
    config=CaptionConfig,
    prepare=prepare_task,
    build_model=lambda task: Captioner(len(task.vocab), task.config.model),
    load=load_captioner,
    loaded=LoadedCaptioner,
)
"""The captioner in the registry (``rnnkit.tasks.TASKS["caption"]``)."""
