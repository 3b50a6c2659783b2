"""Captioning's configs: the model (CNN, picture vector, RNN), the data and the training defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnkit.config import check_rnn_fields
from rnnkit.train.config import TrainConfig, task_training

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
