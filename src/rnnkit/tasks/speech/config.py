"""The speech recogniser's configs: the listener and speller (``model``), the recordings (``data``), the
log-mel features and training."""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnkit.config import check_rnn_fields
from rnnkit.data.audio import FeatureConfig
from rnnkit.train.config import TrainConfig, flag, task_training

TASK = "speech"


@dataclass(kw_only=True)
class SpeechModelConfig:
    cell: str = flag("lstm", "lstm, gru or rnn.")
    listener_size: int = flag(128, "Units per direction of every listener layer.")
    pyramid_layers: int = flag(3, "Pyramidal layers above the bottom one, each halving the sequence.")
    pyramid: bool = flag(
        True,
        "Join neighbour pairs, or keep every frame: the same layers with reduction 1, to compare against.",
    )
    bottom_layers: int = 1
    odd: str = flag(
        "pad", "What a pyramidal layer does with an odd length: pad (a zero frame) or drop (the last frame)."
    )
    speller_size: int = flag(256, "Units of the speller LSTM.")
    embedding_size: int = 32
    attention_size: int = 128
    dropout: float = flag(0.1, "Dropout probability.")
    ctc_weight: float = flag(0.0, "Weight of a CTC loss on the listener (0: no CTC head).")

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
    holdout_speaker: str = flag("", "Test on all of this speaker's recordings; train on the others.")
    val_fraction: float = 0.1
    """Share of the training recordings held out for validation (by seed)."""
    augment: bool = flag(
        True, "SpecAugment-style masking in training: 2 bands of up to 6 mel channels, 2 spans of up to 10%."
    )

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction: expected a fraction in (0, 0.5), got {self.val_fraction}")


@dataclass(kw_only=True)
class SpeechConfig:
    model: SpeechModelConfig = field(default_factory=SpeechModelConfig)
    data: SpeechDataConfig = field(default_factory=SpeechDataConfig)
    features: FeatureConfig = field(
        default_factory=FeatureConfig,
        metadata={
            "flags": {"normalise": "Feature normalisation: utterance, global (the training set's) or none."}
        },
    )
    """The log-mel features. Their config lives in ``rnnkit.data``, below :func:`flag`; so the flags
    among its fields are named here (``flags``: field name -> help)."""
    train: TrainConfig = field(
        default_factory=task_training(batch_size=32, warmup_steps=100, eval_interval=300)
    )
