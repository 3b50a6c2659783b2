"""The speech recogniser's configs: the listener and speller (``model``), the recordings (``data``), the
log-mel features and training."""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnkit.config import check_rnn_fields
from rnnkit.data.audio import FeatureConfig
from rnnkit.train.config import TrainConfig, task_training

TASK = "speech"


@dataclass(kw_only=True)
class SpeechModelConfig:
    cell: str = "lstm"
    listener_size: int = 128
    """Units per direction of every listener layer."""
    pyramid_layers: int = 3
    """Pyramidal layers above the bottom one (each halves the sequence)."""
    pyramid: bool = True
    """False: the same layers without joining neighbour pairs (reduction 1), to compare against."""
    bottom_layers: int = 1
    odd: str = "pad"
    """What a pyramidal layer does with an odd length: pad (a zero frame) or drop (the last frame)."""
    speller_size: int = 256
    embedding_size: int = 32
    attention_size: int = 128
    dropout: float = 0.1
    ctc_weight: float = 0.0
    """Weight of a CTC loss on the listener (0: no CTC head)."""

    def __post_init__(self) -> None:
        check_rnn_fields(
            self,
            positive=("listener_size", "bottom_layers", "speller_size", "embedding_size", "attention_size"),
        )
        if not 0 <= self.pyramid_layers <= 6:
            raise ValueError(f"pyramid_layers: expected 0..6, got {self.pyramid_layers}")
        if self.odd not in ("pad", "drop"):
            raise ValueError(f"odd: expected pad or drop, got {self.odd!r}")
        if not 0 <= self.ctc_weight <= 1:
            raise ValueError(f"ctc_weight: expected a weight in [0, 1], got {self.ctc_weight}")


@dataclass(kw_only=True)
class SpeechDataConfig:
    wav_dir: str = ""
    holdout_speaker: str = ""
    """Train on every other speaker and test on all of this one's recordings."""
    val_fraction: float = 0.1
    """Share of the training recordings held out for validation (by seed)."""
    augment: bool = True
    """SpecAugment-style masking in training: 2 bands of up to 6 mel channels, 2 spans of up to 10%."""

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction: expected a fraction in (0, 0.5), got {self.val_fraction}")


@dataclass(kw_only=True)
class SpeechConfig:
    model: SpeechModelConfig = field(default_factory=SpeechModelConfig)
    data: SpeechDataConfig = field(default_factory=SpeechDataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    train: TrainConfig = field(
        default_factory=task_training(batch_size=32, warmup_steps=100, eval_interval=300)
    )
