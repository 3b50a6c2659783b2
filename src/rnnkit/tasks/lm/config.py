"""The language model's configs (model, data, the whole run) and its presets, functions that return a
full :class:`LMConfig`."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from rnnkit.config import check_rnn_fields
from rnnkit.data.corpus import STDLIB
from rnnkit.data.vocab import KINDS
from rnnkit.errors import UsageError
from rnnkit.train.config import TrainConfig, flag

TASK = "lm"


# -------------------------------------------------------------------------------------------------
# configs


@dataclass(kw_only=True)
class ModelConfig:
    cell: str = flag("lstm", "lstm, gru or rnn (the vanilla tanh RNN).")
    embedding_size: int = flag(
        128, "Size of the character embedding (the one-hot input times a learned matrix)."
    )
    hidden_size: int = flag(256, "Units per recurrent layer.")
    num_layers: int = flag(2, "Stacked recurrent layers.")
    dropout: float = flag(0.0, "Dropout on the embedding, between layers and before the output layer.")
    locked_dropout: bool = flag(
        False,
        "Locked (variational) dropout on the embedding and before the output layer: one mask per sequence, "
        "the same at every step (AWD-LSTM), instead of a new mask at every step.",
        name="--locked-dropout/--step-dropout",
    )
    weight_drop: float = flag(
        0.0,
        "DropConnect on the recurrent matrices W_hh while training (AWD-LSTM's weight drop): this fraction "
        "of their entries is zeroed, one draw per batch.",
    )

    def __post_init__(self) -> None:
        check_rnn_fields(self, positive=("embedding_size", "hidden_size", "num_layers"))
        if not 0.0 <= self.weight_drop < 1.0:
            raise ValueError(f"weight_drop: expected a probability in [0, 1), got {self.weight_drop}")


@dataclass(kw_only=True)
class DataConfig:
    sources: list[str] = field(default_factory=lambda: [STDLIB])
    """Files, folders, globs, chinese-poetry JSON files, or python-stdlib."""
    vocab: str = flag("char", "char (Unicode characters, by frequency) or byte (the 256 byte values).")
    max_vocab: int = flag(0, "Keep the N most frequent characters (the rest read as unknown; 0: all).")
    val_fraction: float = flag(0.05, "Fraction of the text held out for validation.")
    split: str = flag(
        "auto",
        "tail (the last val-fraction of the text), files (whole files, by a stable hash of their "
        "names), or auto (files for python-stdlib, tail otherwise).",
    )
    encoding: str = flag("utf-8", "Text encoding of the input files.")
    errors: str = flag(
        "strict", "What to do with bytes that are not valid in the encoding: strict (stop) or replace."
    )
    strict_folders: bool = flag(
        False,
        "In a folder, stop at the first binary file instead of skipping it (hidden files and folders "
        "such as .git are always skipped; the skipped files are counted in the log).",
        name="--strict/--skip-binary",
    )

    def __post_init__(self) -> None:
        if self.vocab not in KINDS:
            raise ValueError(f"vocab: expected one of {list(KINDS)}, got {self.vocab!r}")
        if self.max_vocab < 0 or self.max_vocab == 1:
            raise ValueError(f"max_vocab: expected 0 or at least 2, got {self.max_vocab}")
        if not 0 <= self.val_fraction < 0.9:
            raise ValueError(f"val_fraction: expected a fraction in [0, 0.9), got {self.val_fraction}")
        if self.split not in ("auto", "tail", "files"):
            raise ValueError(f"split: expected auto, tail or files, got {self.split!r}")
        if self.errors not in ("strict", "replace"):
            raise ValueError(f"errors: expected strict or replace, got {self.errors!r}")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"encoding: unknown text encoding {self.encoding!r}") from None
        if not self.sources:
            raise ValueError("sources: expected at least one input")

    def resolved_split(self) -> str:
        if self.split != "auto":
            return self.split
        return "files" if self.sources == [STDLIB] else "tail"


@dataclass(kw_only=True)
class LMTrainConfig(TrainConfig):
    """The engine's training settings, and the language model's own: its truncated-BPTT length, its
    validation budget and the samples it prints."""

    seq_len: int = flag(64, "Steps of truncated BPTT: the gradient flows at most this far back.")
    eval_tokens: int = 200_000
    """Evaluate on at most this many validation tokens (0: all of them)."""
    sample_length: int = flag(200, "Characters of the sample printed at each evaluation (0: none).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seq_len < 1:
            raise ValueError(f"seq_len: expected a positive integer, got {self.seq_len}")
        for name in ("eval_tokens", "sample_length"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected 0 or more, got {getattr(self, name)}")


@dataclass(kw_only=True)
class LMConfig:
    """Everything a language-model run was made with; saved as ``config.json``."""

    preset: str = "small"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: LMTrainConfig = field(default_factory=LMTrainConfig)


# -------------------------------------------------------------------------------------------------
# presets: functions that return a full config


def _preset(name, model: dict, train: dict, data: dict | None = None) -> LMConfig:
    return LMConfig(
        preset=name, model=ModelConfig(**model), train=LMTrainConfig(**train), data=DataConfig(**(data or {}))
    )


def preset_tiny() -> LMConfig:
    """A seconds-long CPU smoke test."""
    return _preset(
        "tiny",
        {"embedding_size": 16, "hidden_size": 32, "num_layers": 1},
        {
            "batch_size": 8,
            "seq_len": 16,
            "max_steps": 50,
            "eval_interval": 25,
            "warmup_steps": 5,
            "sample_length": 60,
            "eval_tokens": 5000,
            "log_interval": 10,
            "checkpoint_interval": 25,
        },
    )


def preset_demo() -> LMConfig:
    """``make demo``: two minutes on two CPU cores, on the Python standard library."""
    return _preset(
        "demo",
        {"embedding_size": 64, "hidden_size": 512, "num_layers": 1},
        {
            "batch_size": 16,
            "seq_len": 100,
            "lr": 6e-3,
            "max_minutes": 2.0,
            "eval_interval": 100_000,
            "warmup_steps": 50,
            "eval_tokens": 100_000,
            "sample_length": 300,
            "min_lr_ratio": 0.05,
        },
    )


def preset_small() -> LMConfig:
    """A good default for a few MB of any text on a laptop CPU."""
    return _preset(
        "small",
        {"embedding_size": 64, "hidden_size": 256, "num_layers": 2, "dropout": 0.1},
        {"batch_size": 16, "seq_len": 100, "lr": 4e-3, "max_minutes": 15.0, "warmup_steps": 50},
    )


def preset_shakespeare() -> LMConfig:
    """Tiny Shakespeare: the last 10% held out, as nanoGPT splits it; tuned for 5 minutes on 2 CPU cores.

    The size, batch and learning rate were chosen by 90-second probes on a development split cut from
    the training 90% (never on the validation 10%); see docs/shakespeare.md.
    """
    return _preset(
        "shakespeare",
        {"embedding_size": 64, "hidden_size": 512, "num_layers": 1, "dropout": 0.0},
        {
            "batch_size": 16,
            "seq_len": 100,
            "lr": 6e-3,
            "max_minutes": 5.0,
            "warmup_steps": 50,
            "eval_interval": 500,
            "eval_tokens": 0,
            "min_lr_ratio": 0.05,
        },
        {"val_fraction": 0.1},
    )


def preset_poetry() -> LMConfig:
    """Chinese poems (Char-RNN-TensorFlow's poetry.txt or chinese-poetry JSON): 3,500 characters kept."""
    return _preset(
        "poetry",
        {"embedding_size": 128, "hidden_size": 512, "num_layers": 1, "dropout": 0.0},
        {
            "batch_size": 16,
            "seq_len": 64,
            "lr": 5e-3,
            "max_minutes": 15.0,
            "eval_interval": 1000,
            "warmup_steps": 50,
            "min_lr_ratio": 0.05,
        },
        {"max_vocab": 3500, "val_fraction": 0.05},
    )


def preset_lyrics() -> LMConfig:
    """Song lyrics (jay.txt, 65k characters): a small corpus, so a small model and more dropout."""
    return _preset(
        "lyrics",
        {"embedding_size": 128, "hidden_size": 256, "num_layers": 1, "dropout": 0.3},
        {
            "batch_size": 16,
            "seq_len": 50,
            "lr": 3e-3,
            "max_minutes": 5.0,
            "eval_interval": 200,
            "warmup_steps": 50,
        },
        {"max_vocab": 3500, "val_fraction": 0.05},
    )


def preset_code() -> LMConfig:
    """Source code (the Python standard library by default)."""
    return _preset(
        "code",
        {"embedding_size": 64, "hidden_size": 512, "num_layers": 1, "dropout": 0.0},
        {
            "batch_size": 16,
            "seq_len": 100,
            "lr": 6e-3,
            "max_minutes": 15.0,
            "eval_interval": 1000,
            "warmup_steps": 50,
            "min_lr_ratio": 0.05,
        },
    )


def preset_auto() -> LMConfig:
    """Sized by the budget rule for the data and ``--max-minutes`` given (15 minutes by default)."""
    return _preset("auto", {}, {"max_minutes": 15.0})


PRESETS = {
    "auto": preset_auto,
    "tiny": preset_tiny,
    "demo": preset_demo,
    "small": preset_small,
    "shakespeare": preset_shakespeare,
    "poetry": preset_poetry,
    "lyrics": preset_lyrics,
    "code": preset_code,
}


#: The presets sized by the budget rule (:mod:`rnnkit.tasks.lm.budget`) when a run starts: each keeps its
#: data settings and budget, and the rule picks the model, its regularisation, batch and learning rate
#: from the budget, the corpus and this machine's measured speed. ``tiny`` and ``demo`` stay fixed.
RULED = ("auto", "small", "shakespeare", "poetry", "lyrics", "code")


def describe_preset(config: LMConfig, *, ruled: bool = False) -> str:
    """One line of what a preset sets: model, batch and budget (``ruled``: the model is the rule's)."""
    m, t = config.model, config.train
    budget = " or ".join(
        ([f"{t.max_steps:,} steps"] if t.max_steps else [])
        + ([f"{t.max_minutes:g} min"] if t.max_minutes else [])
    )
    if ruled:
        return f"{m.cell}, size, dropout, batch and lr by the budget rule, {budget}"
    return (
        f"{m.cell} {m.num_layers}x{m.hidden_size}, dropout {m.dropout:g}"
        f"{' locked' if m.locked_dropout and m.dropout else ''}"
        f"{f', weight drop {m.weight_drop:g}' if m.weight_drop else ''}, batch {t.batch_size}x{t.seq_len}, "
        f"lr {t.lr:g}, {budget}"
    )


def presets_help() -> str:
    """Every preset with its budget, for ``--help``."""
    return "; ".join(
        f"{name} ({describe_preset(make(), ruled=name in RULED)})" for name, make in PRESETS.items()
    )


def get_preset(name: str) -> LMConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise UsageError(f"--preset: expected one of {', '.join(PRESETS)}, got {name!r}") from None
