"""The classifier's configs: model, data, language-model pre-training and the whole run (``members``
> 1 for an ensemble), and the task's name in checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnkit.config import check_rnn_fields, check_text_data_fields
from rnnkit.train.config import TrainConfig, flag, task_training

TASK = "classify"
POOLS = ("last", "mean", "max", "concat")
TRUNCATIONS = ("head", "tail", "both")


@dataclass(kw_only=True)
class ClassifierModelConfig:
    cell: str = flag("lstm", "lstm, gru or rnn.")
    embedding_size: int = flag(128, "Token embedding size.")
    hidden_size: int = flag(128, "Units per direction.")
    num_layers: int = flag(1, "Stacked layers.")
    bidirectional: bool = flag(True, "BiRNN or not.", name="--bidirectional/--unidirectional")
    dropout: float = flag(0.3, "Dropout on the embeddings, between layers and on the pooled representation.")
    pool: str = flag(
        "last",
        "last (the final states of both directions), mean or max over the real steps, or concat (all three).",
    )
    bigram_size: int = flag(
        0, "Embedding size of each character's left and right bigrams (0: none). Character tokens only."
    )

    def __post_init__(self) -> None:
        check_rnn_fields(self, positive=("embedding_size", "hidden_size", "num_layers"))
        if self.pool not in POOLS:
            raise ValueError(f"pool: expected one of {list(POOLS)}, got {self.pool!r}")
        if self.bigram_size < 0:
            raise ValueError(f"bigram_size: expected 0 or more, got {self.bigram_size}")


@dataclass(kw_only=True)
class ClassifierDataConfig:
    train: str = ""
    """The training file (CSV or TSV)."""
    val: str = flag(
        "", "Validation file (default: hold out --val-fraction of the training rows, by seed).", path=True
    )
    text_column: str = "1"
    label_column: str = "0"
    tokens: str = flag("auto", "auto, char (Chinese) or word.")
    val_fraction: float = flag(0.1, "Share of the training rows held out.")
    max_tokens: int = flag(256, "Cut longer texts to this many tokens (see --truncate).")
    truncate: str = flag(
        "head",
        "What a cut text keeps: head (the first max-tokens), tail (the last) or both (the first "
        "and last halves: a review's opening and its verdict; Sun et al. 2019 found this best for long "
        "reviews).",
    )
    min_count: int = 1
    """Keep tokens seen at least this often in training."""
    max_vocab: int = 50_000
    bigram_min_count: int = 2
    """Bigrams seen fewer times in training read as <unk>."""
    max_bigrams: int = 200_000
    encoding: str = flag("utf-8", "Text encoding of the files.")

    def __post_init__(self) -> None:
        if self.truncate not in TRUNCATIONS:
            raise ValueError(f"truncate: expected one of {list(TRUNCATIONS)}, got {self.truncate!r}")
        check_text_data_fields(self)


@dataclass(kw_only=True)
class PretrainConfig:
    minutes: float = flag(
        0.0,
        "First train the embedding and RNN as language models on the texts for this many minutes, "
        "out of --max-minutes (0: none).",
        name="--pretrain-minutes",
    )
    steps: int = 0
    """Or a number of pre-training steps (when train.max_minutes is not the budget)."""
    eval_interval: int = 200
    vocab: int = 1000
    """The heads predict the most frequent tokens only (rarer ones as <unk>): 1,000 characters are 96%
    of ChnSentiCorp's text, and a softmax over all 3,563 made a step 3.5 times slower."""

    def __post_init__(self) -> None:
        if self.minutes < 0 or self.steps < 0 or self.eval_interval < 1 or self.vocab < 2:
            raise ValueError(
                "pretrain: minutes and steps: 0 or more; eval_interval: positive; vocab: 2 or more"
            )

    @property
    def on(self) -> bool:
        return bool(self.minutes or self.steps)


@dataclass(kw_only=True)
class ClassifierConfig:
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)
    data: ClassifierDataConfig = field(default_factory=ClassifierDataConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(
        default_factory=task_training(batch_size=64, warmup_steps=50, eval_interval=200, ema=0.995)
    )
    members: int = flag(
        1,
        "Train an ensemble of this many classifiers (seeds SEED, SEED+1, ...) and average their "
        "probabilities; --max-minutes is shared out among them, --max-steps is each one's.",
    )

    def __post_init__(self) -> None:
        if self.members < 1:
            raise ValueError(f"members: expected 1 or more, got {self.members}")
