"""The captioner's modules: the residual CNN (or an external backbone), the picture vector and the RNN
that writes the words (teacher forcing, greedy and beam search). Pure torch, no I/O."""

from __future__ import annotations

import importlib

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.errors import UsageError
from rnnkit.generate import select_state
from rnnkit.nn import Recurrent
from rnnkit.tasks.caption.config import CaptionModelConfig

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
