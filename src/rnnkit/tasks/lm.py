"""The char-RNN language model: the main job (``rnnkit train | sample | eval``).

Embedding -> ``Recurrent`` (LSTM, GRU or vanilla RNN, stacked) -> dropout -> linear -> softmax over the
vocabulary, trained by truncated BPTT on one long stream of characters (or bytes), with the state
carried from batch to batch. A re-implementation of the char-RNN of A. Karpathy
(https://github.com/karpathy/char-rnn) and hzy46/Char-RNN-TensorFlow, with validation, resume and saved
configs, on :class:`rnnkit.train.Trainer`.
"""

from __future__ import annotations

import codecs
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.config import check_rnn_fields, to_dict
from rnnkit.data.batching import StreamBatcher
from rnnkit.data.corpus import STDLIB, EncodedCorpus
from rnnkit.data.vocab import KINDS, Vocabulary
from rnnkit.errors import CheckpointError, DataError, UsageError
from rnnkit.generate import SamplingConfig, sample
from rnnkit.nn import LSTMState, Recurrent, Stepper
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import config_of, load_weights, task_config
from rnnkit.train.config import TrainConfig
from rnnkit.train.task import Setup, Task, TaskSpec

TASK = "lm"
log = logging.getLogger("rnnkit")


# -------------------------------------------------------------------------------------------------
# configs


@dataclass(kw_only=True)
class ModelConfig:
    cell: str = "lstm"
    """lstm, gru or rnn (the vanilla tanh RNN)."""
    embedding_size: int = 128
    """Size of the character embedding (the one-hot input times a learned matrix)."""
    hidden_size: int = 256
    """Units per recurrent layer."""
    num_layers: int = 2
    """Stacked recurrent layers."""
    dropout: float = 0.0
    """Dropout on the embedding, between layers and before the output layer."""

    def __post_init__(self) -> None:
        check_rnn_fields(self, positive=("embedding_size", "hidden_size", "num_layers"))


@dataclass(kw_only=True)
class DataConfig:
    sources: list[str] = field(default_factory=lambda: [STDLIB])
    """Files, folders, globs, chinese-poetry JSON files, or python-stdlib."""
    vocab: str = "char"
    """char (Unicode characters, by frequency) or byte (the 256 byte values)."""
    max_vocab: int = 0
    """Keep at most this many characters (the rest map to the unknown token); 0 keeps all."""
    val_fraction: float = 0.05
    """Fraction of the text held out for validation."""
    split: str = "auto"
    """tail (the last val_fraction of the text), files (whole files, by a stable hash of their
    names), or auto (files for python-stdlib, tail otherwise)."""
    encoding: str = "utf-8"
    errors: str = "strict"
    """What to do with bytes that are not valid in the encoding: strict (stop) or replace."""
    strict_folders: bool = False
    """In a folder, stop at a binary file instead of skipping it (hidden files are skipped always)."""

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
class LMConfig:
    """Everything a language-model run was made with; saved as ``config.json``."""

    preset: str = "small"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# -------------------------------------------------------------------------------------------------
# presets: functions that return a full config


def _preset(name, model: dict, train: dict, data: dict | None = None) -> LMConfig:
    return LMConfig(
        preset=name, model=ModelConfig(**model), train=TrainConfig(**train), data=DataConfig(**(data or {}))
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


PRESETS = {
    "tiny": preset_tiny,
    "demo": preset_demo,
    "small": preset_small,
    "shakespeare": preset_shakespeare,
    "poetry": preset_poetry,
    "lyrics": preset_lyrics,
    "code": preset_code,
}


def describe_preset(config: LMConfig) -> str:
    """One line of what a preset sets: model, batch and budget."""
    m, t = config.model, config.train
    budget = " or ".join(
        ([f"{t.max_steps:,} steps"] if t.max_steps else [])
        + ([f"{t.max_minutes:g} min"] if t.max_minutes else [])
    )
    return (
        f"{m.cell} {m.num_layers}x{m.hidden_size}, dropout {m.dropout:g}, batch {t.batch_size}x{t.seq_len}, "
        f"lr {t.lr:g}, {budget}"
    )


def presets_help() -> str:
    """Every preset with its budget, for ``--help``."""
    return "; ".join(f"{name} ({describe_preset(make())})" for name, make in PRESETS.items())


def get_preset(name: str) -> LMConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise UsageError(f"--preset: expected one of {', '.join(PRESETS)}, got {name!r}") from None


# -------------------------------------------------------------------------------------------------
# the model


#: Widest batch of streams for which :meth:`CharLM.step` takes the stepper by default.
FAST_STREAMS = 4


class CharLM(nn.Module):
    r"""Character language model: :math:`o_t = \mathrm{softmax}(V\, \mathrm{RNN}(E x_t, s_{t-1}) + c)`.

    Args:
        vocab_size: :math:`V`, the number of tokens.
        config: a :class:`ModelConfig`.

    Inputs: ``ids`` ``(N, T)`` int64, ``state`` (as :class:`rnnkit.nn.Recurrent` returns it) or ``None``.

    Outputs: ``(logits, state)``, logits ``(N, T, V)``.
    """

    def __init__(self, vocab_size: int, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.embedding_size)
        self.rnn = Recurrent(
            config.embedding_size,
            config.hidden_size,
            cell=config.cell,
            num_layers=config.num_layers,
            dropout=config.dropout,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, vocab_size)

    def forward(self, ids: Tensor, state=None):
        x = self.dropout(self.embedding(ids))  # (N, T, E)
        out, state = self.rnn(x, state=state)  # (N, T, H)
        return self.head(self.dropout(out)), state  # (N, T, V)

    def step(self, ids: Tensor, state=None, *, fast: bool | None = None):
        """One token per stream: ``ids`` ``(N,)`` -> logits ``(N, V)`` and the new state.

        ``fast`` goes through a :class:`rnnkit.nn.Stepper` built from the current weights and rebuilt
        whenever they change; ``fast=False`` runs the plain forward pass on a length-1 sequence. The
        default takes the stepper in eval mode without gradients for up to ``FAST_STREAMS`` streams: on
        CPU the fused kernel (oneDNN) wins for wider batches (see bench/sample_speed.py). Both give
        the same tokens.
        """
        if fast is None:
            fast = not self.training and not torch.is_grad_enabled() and ids.shape[0] <= FAST_STREAMS
        if fast:
            return self.stepper().step(ids, state)
        logits, state = self(ids[:, None], state)
        return logits[:, 0], state

    def stepper(self) -> Stepper:
        """The fast one-step path for the current weights (cached until a weight changes)."""
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in self.parameters())
        cached = self.__dict__.get("_stepper")
        if cached is None or cached[0] != key:
            cached = (key, Stepper(self.embedding, self.rnn, self.head))
            self.__dict__["_stepper"] = cached
        return cached[1]


def build_model(config: LMConfig, vocab_size: int) -> CharLM:
    return CharLM(vocab_size, config.model)


# -------------------------------------------------------------------------------------------------
# the trainer's task


class LMTask(Task):
    """Feeds the trainer TBPTT batches from the memmapped corpus and measures validation nats/token."""

    name = TASK
    unit = "chars"

    def __init__(
        self,
        config: LMConfig,
        corpus: EncodedCorpus,
        *,
        rank: int = 0,
        world_size: int = 1,
        sample_seed: int = 0,
    ):
        self.config = config
        self.corpus = corpus
        self.vocab = corpus.vocab
        t = config.train
        self.batcher = StreamBatcher(corpus.tokens("train"), t.batch_size, t.seq_len, rank, world_size)
        if self.batcher.row_len < t.seq_len:
            need = t.batch_size * world_size * t.seq_len + 1
            raise DataError(
                f"the corpus is too small: {corpus.train_tokens:,} training tokens cannot fill one batch of "
                f"{t.batch_size} x {t.seq_len} (needs {need:,}); use a smaller --batch-size or --seq-len"
            )
        self.val_tokens = corpus.tokens("val")  # opened now: a staged corpus moves into the run folder
        self.epoch = 0
        self.index = 0
        self.sample_seed = sample_seed

    # data position ------------------------------------------------------------------------------
    def next_batch(self):
        if self.index >= self.batcher.batches_per_epoch:
            self.epoch += 1
            self.index = 0
        batch = self.batcher.batch(self.index)
        new_pass = self.index == 0
        self.index += 1
        return batch, new_pass

    def data_state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_data_state(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])

    def make_carry(self, parts: list[Tensor]):
        return LSTMState(*parts) if len(parts) == 2 else tuple(parts)

    # loss and evaluation ------------------------------------------------------------------------
    def training_loss(self, model: nn.Module, batch, carry):
        x, y = batch
        logits, state = model(x, carry)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        return loss, state, y.numel()

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        tokens = self.val_tokens
        cap = self.config.train.eval_tokens
        if cap and len(tokens) > cap:
            tokens = tokens[:cap]
        if len(tokens) < 2:
            return {}
        nats, count = score_tokens(model, tokens)
        loss = nats / count
        return {"val_loss": loss, "val_bpc": loss / math.log(2)}

    def on_evaluate(self, model: nn.Module, step: int) -> None:
        length = self.config.train.sample_length
        if not length:
            return
        text = generate_text(
            model, self.vocab, "\n", length, SamplingConfig(temperature=0.8), seed=self.sample_seed
        )
        log.info("sample at step %d:\n%s", step, text)

    def checkpoint_extras(self) -> dict:
        return {"vocab": self.vocab.to_dict(), "corpus": self.corpus.to_dict()}

    def describe_model(self) -> str:
        m = self.config.model
        return f"{m.cell} {m.num_layers}x{m.hidden_size}"


def score_tokens(
    model: nn.Module, tokens: np.ndarray, max_streams: int = 32, seq_len: int = 256
) -> tuple[float, int]:
    """Total nats of predicting ``tokens[1:]`` from what precedes each one, and how many were predicted.

    The text is cut into at most ``max_streams`` contiguous rows read in parallel with the state carried
    along each row (each row starts from a zero state), as training does.
    """
    device = next(model.parameters()).device
    streams = max(1, min(max_streams, (len(tokens) - 1) // (4 * seq_len)))
    batcher = StreamBatcher(tokens, streams, seq_len)
    total, count, state = 0.0, 0, None
    for x, y in batcher:
        logits, state = model(x.to(device), state)
        total += float(
            F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), y.to(device).reshape(-1), reduction="sum"
            )
        )
        count += y.numel()
    # the rows leave out up to ``streams - 1`` tokens at the end; score them in one short pass
    covered = streams * batcher.row_len
    if covered + 1 < len(tokens):
        rest = torch.from_numpy(np.asarray(tokens[covered:], dtype=np.int64))[None]  # (1, R)
        logits, _ = model(rest[:, :-1].to(device))
        total += float(F.cross_entropy(logits.float()[0], rest[0, 1:].to(device), reduction="sum"))
        count += rest.shape[1] - 1
    return total, count


# -------------------------------------------------------------------------------------------------
# loading and using a trained run


@dataclass
class LoadedLM:
    model: CharLM
    vocab: Vocabulary
    config: LMConfig
    checkpoint: str


def load_lm(run_dir: Path, which: str = "best", device: str = "cpu") -> LoadedLM:
    """Rebuild the model and vocabulary of a run from its checkpoint alone (no other file needed)."""
    loaded, config = task_config(run_dir, which, TASK, LMConfig, "a model")
    try:
        vocab = Vocabulary.from_dict(loaded.config["vocab"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{loaded.folder}: config.json does not describe a model ({exc})") from None
    model = build_checked(lambda: build_model(config, len(vocab)), checkpoint=loaded)
    load_weights(model, loaded)
    model.to(device).eval()
    return LoadedLM(model, vocab, config, loaded.name)


UNKNOWN_WARNING = 0.05
"""``rnnkit eval`` warns when more than this share of a text's characters are unknown to the model."""


def score_text(loaded: LoadedLM, text: str, name: str) -> dict:
    """Nats, bits and perplexity per character of ``text``, and how much of it the model cannot read:
    ``unknown_chars`` counts occurrences (each one scored as the unknown token), ``unknown_distinct``
    the distinct characters."""
    ids = loaded.vocab.encode(text)
    if len(ids) < 2:
        raise DataError(f"{name}: needs at least two characters to score")
    with torch.no_grad():
        nats, count = score_tokens(loaded.model, ids)
    per = nats / count
    unk = loaded.vocab.unk_id
    unknown = int((np.asarray(ids) == unk).sum()) if unk is not None else 0
    return {
        "file": name,
        "chars": count,
        "nats_per_char": per,
        "bits_per_char": per / math.log(2),
        "perplexity": math.exp(per),
        "unknown_chars": unknown,
        "unknown_distinct": len(loaded.vocab.missing(text)),
        "unknown_share": unknown / len(ids),
    }


def generate_text(
    model: nn.Module,
    vocab: Vocabulary,
    prime: str,
    length: int,
    config: SamplingConfig,
    seed: int | None = None,
) -> str:
    ids = vocab.encode(prime).tolist() or [0]
    banned = [vocab.unk_id] if vocab.unk_id is not None else []
    decode = vocab.decoder()
    was_training = model.training
    model.eval()
    text = "".join(decode(int(t[0])) for t in sample(model, ids, length, config, seed=seed, banned=banned))
    model.train(was_training)
    return text + decode.flush()


# -------------------------------------------------------------------------------------------------
# the data step: what the one runner (rnnkit.train.run) calls


def prepare_task(config: LMConfig, setup: Setup) -> LMTask:
    """Encode the corpus (once, into the run folder's staging area, moved in when the run commits), or
    read back a resumed run's; under DDP rank 0 encodes and the other ranks read what it wrote."""
    from rnnkit.train.checkpoint import verify_data_files
    from rnnkit.train.run import from_rank0

    out = setup.out
    if setup.resumed is not None:
        previous = config_of(setup.resumed, LMConfig, "a run")
        if config.model != previous.model or config.data != previous.data:
            raise UsageError(
                "--resume: the model and data settings of a run cannot change; only training settings can"
            )
        if setup.rank == 0:  # one process hashes the corpus: the others read the same files
            verify_data_files(out)
        corpus = _saved_corpus(out, setup.resumed)
    else:  # under DDP rank 0 encodes, and the other ranks read what it staged
        staging = setup.folder.stage() if setup.rank == 0 else None
        corpus = _encode(config, staging) if staging is not None else None
        data = Path(from_rank0(str(staging))) / "data"
        if corpus is None:
            info = json.loads((data / "corpus.json").read_text(encoding="utf-8"))
            corpus = EncodedCorpus.load(data, Vocabulary.from_dict(info["vocab"]), info)
    task = LMTask(config, corpus, rank=setup.rank, world_size=setup.world_size, sample_seed=config.train.seed)
    if setup.resumed is None:
        log.info("preset %s, with your flags: %s", config.preset, describe_preset(config))
    return task


def _encode(config: LMConfig, staging: Path) -> EncodedCorpus:
    """Encode the corpus into ``staging/data`` (and the run's ``config.json`` beside it).

    Bad input (a missing, empty or undecodable file, a corpus too small for one batch, a model too large
    for memory) therefore leaves no trace, and ``--force`` replaces an old run only once the new one is
    known to start.
    """
    from rnnkit.data.corpus import encode_corpus, resolve_sources
    from rnnkit.train.checkpoint import atomic_write_json

    d = config.data
    docs = resolve_sources(d.sources, strict=d.strict_folders)
    corpus = encode_corpus(
        docs,
        staging / "data",
        vocab_kind=d.vocab,
        max_vocab=d.max_vocab or None,
        val_fraction=d.val_fraction,
        split=d.resolved_split(),
        encoding=d.encoding,
        errors=d.errors,
    )
    info = {**corpus.to_dict(), "vocab": corpus.vocab.to_dict()}
    atomic_write_json(staging / "data" / "corpus.json", info)
    atomic_write_json(staging / "config.json", to_dict(config))
    log.info(
        "corpus: %d files, %s training and %s validation tokens, vocabulary of %d",
        corpus.documents,
        f"{corpus.train_tokens:,}",
        f"{corpus.val_tokens:,}",
        len(corpus.vocab),
    )
    return corpus


def saved_config(run_dir: Path) -> LMConfig:
    """The config of a run's last checkpoint."""
    return task_config(run_dir, "last", TASK, LMConfig, "a run")[1]


def _saved_corpus(out: Path, loaded) -> EncodedCorpus:
    try:
        vocab = Vocabulary.from_dict(loaded.config["vocab"])
        return EncodedCorpus.load(out / "data", vocab, loaded.config["corpus"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{loaded.folder}: config.json does not describe the corpus ({exc})") from None


SPEC = TaskSpec(
    name=TASK,
    config=LMConfig,
    prepare=prepare_task,
    build_model=lambda task: build_model(task.config, len(task.vocab)),
    load=load_lm,
    loaded=LoadedLM,
)
"""The char-RNN in the registry (``rnnkit.tasks.TASKS["lm"]``)."""
