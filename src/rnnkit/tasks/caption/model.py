"""The captioner's modules: the residual CNN (or an external backbone), the picture vector and the RNN
that writes the words (teacher forcing, greedy and beam search). Pure torch, no I/O."""

from __future__ import annotations

import importlib

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit import decode
from rnnkit.data.vocab import END_ID, START_ID
from rnnkit.errors import UsageError
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

    def step_of(self, v: Tensor):
        """:meth:`step` as :mod:`rnnkit.decode` calls it, for the pictures ``v`` (one row each): the
        picture enters at the first step, the one whose state is still ``None``."""
        return lambda ids, state: self.step(ids, v, state, first=state is None)

    @torch.no_grad()
    def greedy(self, images: Tensor, max_words: int) -> list[list[int]]:
        """The most likely word at each step: a caption of at most ``max_words`` words per picture."""
        v = self.features(images)
        start = torch.full((v.shape[0],), START_ID, dtype=torch.long, device=v.device)
        return decode.greedy(self.step_of(v), start, max_len=max_words + 1, end_id=END_ID)

    @torch.no_grad()
    def beams(self, images: Tensor, beam_size: int, max_words: int, alpha: float = 1.0) -> list[list[int]]:
        """The best caption of each picture by log P / length^alpha (the length counts ``<end>``):
        :func:`rnnkit.decode.beam_search`, the N x K hypotheses one batch of the RNN."""
        v = self.features(images)
        start = torch.full((v.shape[0],), START_ID, dtype=torch.long, device=v.device)
        step = self.step_of(v.repeat_interleave(beam_size, 0))  # picture i's vector for each of its beams
        found = decode.beam_search(
            step, start, beam_size=beam_size, max_len=max_words + 1, end_id=END_ID, alpha=alpha
        )
        return [h.tokens for h in found]

    def beam(self, image: Tensor, beam_size: int, max_words: int, alpha: float = 1.0) -> list[int]:
        """:meth:`beams` of one picture ``(1, 3, S, S)``."""
        return self.beams(image, beam_size, max_words, alpha)[0]
