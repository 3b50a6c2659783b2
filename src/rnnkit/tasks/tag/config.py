"""The tagger's configs: model, data and training, saved with every run."""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnkit.config import check_rnn_fields, check_text_data_fields
from rnnkit.train.config import TrainConfig, flag, task_training

TASK = "tag"


@dataclass(kw_only=True)
class TaggerModelConfig:
    cell: str = flag("lstm", "lstm, gru or rnn.")
    embedding_size: int = flag(128, "Token embedding size.")
    hidden_size: int = flag(128, "Units per direction.")
    num_layers: int = flag(1, "Stacked layers.")
    bidirectional: bool = flag(True, "BiRNN or not.", name="--bidirectional/--unidirectional")
    dropout: float = flag(0.2, "Dropout probability.")
    crf: bool = flag(True, "A CRF output layer (Viterbi decoding) or a softmax at each step.")
    bigram_size: int = flag(
        64, "Embedding size of each character's left and right bigrams (0: none). Character tokens only."
    )

    def __post_init__(self) -> None:
        check_rnn_fields(self, positive=("embedding_size", "hidden_size", "num_layers"))
        if self.bigram_size < 0:
            raise ValueError(f"bigram_size: expected 0 or more, got {self.bigram_size}")


@dataclass(kw_only=True)
class TaggerDataConfig:
    train: str = ""
    val: str = flag(
        "",
        "Validation file (default: hold out --val-fraction of the training sentences, by seed).",
        path=True,
    )
    format: str = "conll"
    """conll or segmented."""
    tokens: str = flag("auto", "auto, char or word.")
    val_fraction: float = flag(0.05, "Share of the training sentences held out.")
    max_tokens: int = 200
    """Longer sentences are cut into pieces of at most this many tokens."""
    min_count: int = 1
    max_vocab: int = 50_000
    bigram_min_count: int = 2
    max_bigrams: int = 200_000
    encoding: str = flag("utf-8", "Text encoding of the files.")

    def __post_init__(self) -> None:
        if self.format not in ("conll", "segmented"):
            raise ValueError(f"format: expected conll or segmented, got {self.format!r}")
        check_text_data_fields(self)


@dataclass(kw_only=True)
class TaggerConfig:
    model: TaggerModelConfig = field(default_factory=TaggerModelConfig)
    data: TaggerDataConfig = field(default_factory=TaggerDataConfig)
    train: TrainConfig = field(
        default_factory=task_training(batch_size=32, warmup_steps=50, eval_interval=300)
    )
