"""Captioning's configs: the model (CNN, picture vector, RNN), the data and the training defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnkit.config import check_rnn_fields
from rnnkit.train.config import TrainConfig, flag, task_training

TASK = "caption"
INJECT = ("first-step", "every-step")


@dataclass(kw_only=True)
class CaptionModelConfig:
    cell: str = flag("lstm", "lstm, gru or rnn.")
    embedding_size: int = 128
    hidden_size: int = flag(256, "Units of the RNN.")
    num_layers: int = 1
    dropout: float = flag(0.2, "Dropout probability.")
    image_size: int = flag(64, "Pixels a side after scaling and centre-cropping.")
    cnn_width: int = flag(16, "Channels of the CNN's first stage (doubled at each of its 4 stages).")
    image_feature_size: int = 256
    """Size of the projected picture vector W v (the part of the first input that is the picture)."""
    grid_size: int = flag(
        4,
        "Cells a side of the CNN grid the picture vector keeps: the last feature map is average-pooled "
        "to a grid and flattened, so the vector keeps where things are (1: global average pooling, which "
        "gives 'red circle left of blue square' and its mirror the same vector).",
    )
    inject: str = flag("first-step", "first-step (the tutorial's CNN+RNN) or every-step.")
    word_loss: float = flag(
        1.0,
        "Weight of the picture's bag-of-words loss, which trains the CNN: the picture vector also "
        "predicts which words its captions use (0: off).",
    )
    backbone: str = flag(
        "",
        "package.module:factory of another CNN (e.g. torchvision.models:resnet18); empty: the residual "
        "CNN written here.",
    )
    backbone_weights: str = flag(
        "", "The backbone's weights, a local state-dict file (nothing is downloaded)."
    )

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
    min_count: int = flag(2, "Words seen fewer times in the training captions read as <unk>.")
    max_words: int = 30
    flip: bool = flag(
        False, "Mirror training pictures at random (off: it would swap 'left of' and 'right of')."
    )

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
