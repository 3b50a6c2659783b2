"""The language model's task for the trainer (:class:`LMTask`), the loaded model of a trained run
(``load_lm``, ``score_text``, ``score_files``, ``generate_text``, ``sample_streams``), ``prepare_task``
and :data:`SPEC`."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.data.batching import StreamBatcher
from rnnkit.data.corpus import EncodedCorpus
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import CheckpointError, DataError, UsageError
from rnnkit.generate import Piece, PoemForm, SamplingConfig, generate_pieces
from rnnkit.nn import LSTMState
from rnnkit.tasks.lm.config import TASK, LMConfig, describe_preset
from rnnkit.tasks.lm.data import _encode, _saved_corpus
from rnnkit.tasks.lm.metrics import score_tokens
from rnnkit.tasks.lm.model import CharLM, build_model
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import config_of, load_weights, task_config
from rnnkit.train.task import Setup, Task, TaskSpec

log = logging.getLogger("rnnkit")


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

    # the contract (train/task.py) still declares None; the trainer records a returned mapping of texts
    def on_evaluate(self, model: nn.Module, step: int) -> dict[str, str]:
        """Print the sample, and hand it back to the trainer (TensorBoard's ``sample`` text)."""
        if not self.config.train.sample_length:
            return {}
        text = self.sample_text(model)
        log.info("sample at step %d:\n%s", step, text)
        return {"sample": text}

    def sample_text(self, model: nn.Module) -> str:
        """The sample printed at each evaluation: ``sample_length`` characters after a line break at
        temperature 0.8, the same seed each time (so the samples show the model change, not the dice)."""
        config = SamplingConfig(temperature=0.8)
        return generate_text(
            model, self.vocab, "\n", self.config.train.sample_length, config, seed=self.sample_seed
        )

    def checkpoint_extras(self) -> dict:
        return {"vocab": self.vocab.to_dict(), "corpus": self.corpus.to_dict()}

    def describe_model(self) -> str:
        m = self.config.model
        return f"{m.cell} {m.num_layers}x{m.hidden_size}"


# -------------------------------------------------------------------------------------------------
# loading and using a trained run


@dataclass
class LoadedLM:
    """A trained char-RNN, as ``rnnkit.load(run_dir)`` returns it.

    Methods (the same code ``rnnkit sample``/``rnnkit eval`` and the server run):

    - ``generate(prime="", length=200, *, temperature=0.8, top_k=0, top_p=1.0, seed=None, stop=None,
      form=None, beam=1) -> str``: the text written after ``prime`` (the prime not repeated).
    - ``score(text) -> dict``: nats, bits and perplexity per character of ``text``.

    Attributes: ``model`` (the :class:`CharLM`, in eval mode), ``vocab``, ``config`` (the run's
    :class:`LMConfig`), ``checkpoint`` (best or last).
    """

    model: CharLM
    vocab: Vocabulary
    config: LMConfig
    checkpoint: str

    def generate(
        self,
        prime: str = "",
        length: int = 200,
        *,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: str | None = None,
        form: PoemForm | None = None,
        beam: int = 1,
        precision: str = "fp32",
    ) -> str:
        """The text the model writes after ``prime`` (read first; not repeated in the result): what
        ``rnnkit sample`` prints after the prime for the same options. ``length`` characters (or
        tokens) drawn at ``temperature`` among the ``top_k`` / ``top_p`` most likely (``seed``: the same
        text every time); ``beam`` > 1: the most likely continuation by beam search with that many beams
        (``rnnkit sample --beam``) instead of sampling. It ends right after the first ``stop``, if it
        comes; a ``form`` (:class:`rnnkit.PoemForm`, built on ``self.vocab``) writes a poem of its own
        length. An empty prime starts as after a line break. ``precision`` (``fp32``, ``bf16``, ``int8``
        or ``auto``): what the recurrent weights are read in while it writes (``rnnkit sample
        --precision``; see :mod:`rnnkit.generate`)."""
        if length < 0:
            raise UsageError(f"length: expected 0 or more, got {length}")
        if beam < 1:
            raise UsageError(f"beam: expected 1 or more, got {beam}")
        sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
        pieces = generate_pieces(
            self.model, self.vocab, prime, length, sampling, seed=seed, form=form, stop=stop,
            beam=beam if beam > 1 else 0, precision=precision,
        )  # fmt: skip
        return "".join(piece.text for piece in pieces)

    def score(self, text: str) -> dict:
        """:func:`score_text` of ``text`` (at least two characters): ``chars``, ``nats_per_char``,
        ``bits_per_char``, ``perplexity`` and the unknown characters (``unknown_chars``,
        ``unknown_distinct``, ``unknown_share``), as ``rnnkit eval`` reports them for a file."""
        found = score_text(self, text, "text")
        del found["file"]
        return found


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


def score_files(
    loaded: LoadedLM, sources: list[str], encoding: str = "utf-8", errors: str = "strict"
) -> list[dict]:
    """:func:`score_text` of each file that ``sources`` name (files, folders, globs, as training reads
    them), in order: what ``rnnkit eval`` prints. Logs a warning for each file with more than
    :data:`UNKNOWN_WARNING` of its characters unknown to the model."""
    from rnnkit.data.corpus import read_chunks, resolve_sources

    rows = [
        score_text(loaded, "".join(read_chunks(doc, encoding, errors)), doc.name)
        for doc in resolve_sources(sources)
    ]
    for row in rows:
        if row["unknown_share"] > UNKNOWN_WARNING:
            log.warning(
                "warning: %s: %.1f%% of its characters (%s distinct) are unknown to this model; its "
                "figures say little about this text",
                row["file"], 100 * row["unknown_share"], f"{row['unknown_distinct']:,}",
            )  # fmt: skip
    return rows


def generate_text(
    model: nn.Module,
    vocab: Vocabulary,
    prime: str,
    length: int,
    config: SamplingConfig,
    seed: int | None = None,
) -> str:
    """The whole text of :func:`rnnkit.generate.generate_pieces` (the prime not repeated), with the model in
    eval mode for the while."""
    was_training = model.training
    model.eval()
    try:
        return "".join(
            piece.text for piece in generate_pieces(model, vocab, prime, length, config, seed=seed)
        )
    finally:
        model.train(was_training)


def sample_streams(
    loaded: LoadedLM,
    prime: str,
    length: int,
    sampling: SamplingConfig,
    *,
    num_samples: int = 1,
    seed: int | None = None,
    stop: str | None = None,
    beam: int = 0,
    line_chars: int | None = None,
    lines: int | None = None,
    acrostic: str = "",
) -> Iterator[Iterator[str]]:
    """What ``rnnkit sample`` writes: one stream of text pieces per sample (:func:`generate_pieces`;
    sample ``i`` drawn with ``seed + i``). Given ``line_chars`` (5 if not), ``lines`` or ``acrostic``,
    each sample is a poem of that :class:`PoemForm`; otherwise its stream starts with ``prime`` itself.
    Logs a warning first when the vocabulary lacks characters of ``prime`` (read as unknown)."""
    missing = loaded.vocab.missing(prime)
    if missing:
        shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in missing)
        log.warning(
            "warning: the model's vocabulary lacks these prime characters: %s; read as unknown", shown
        )
    form = None
    if acrostic or line_chars is not None or lines is not None:
        chars = 5 if line_chars is None else line_chars
        form = PoemForm(loaded.vocab, line_chars=chars, lines=lines, acrostic=acrostic)
    for index in range(num_samples):
        pieces = generate_pieces(
            loaded.model, loaded.vocab, prime, length, sampling, seed=None if seed is None else seed + index,
            form=form, stop=stop, beam=beam,
        )  # fmt: skip
        yield _with_prime(prime if form is None else "", pieces)


def _with_prime(prime: str, pieces: Iterator[Piece]) -> Iterator[str]:
    if prime:
        yield prime
    for piece in pieces:
        yield piece.text


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
        encoded = _encode(config, staging) if staging is not None else None
        data = Path(from_rank0(str(staging))) / "data"
        if encoded is None:
            info = json.loads((data / "corpus.json").read_text(encoding="utf-8"))
            encoded = EncodedCorpus.load(data, Vocabulary.from_dict(info["vocab"]), info)
        corpus = encoded
    task = LMTask(config, corpus, rank=setup.rank, world_size=setup.world_size, sample_seed=config.train.seed)
    corpus.folder = out / "data"  # a staged corpus's token files move there when the run commits
    if setup.resumed is None:
        log.info("preset %s, with your flags: %s", config.preset, describe_preset(config))
    return task


def train_report(summary: dict) -> str:
    """The last line of ``rnnkit train``: the step reached and the validation loss."""
    val = summary.get("val_loss")
    if val is None:
        return f"step {summary['step']}"
    return f"step {summary['step']}, validation {val:.4f} nats/char ({val / math.log(2):.3f} bits)"


def saved_config(run_dir: Path) -> LMConfig:
    """The config of a run's last checkpoint."""
    return task_config(run_dir, "last", TASK, LMConfig, "a run")[1]


SPEC = TaskSpec(
    name=TASK,
    config=LMConfig,
    prepare=prepare_task,
    build_model=lambda task: build_model(task.config, len(task.vocab)),
    load=load_lm,
    loaded=LoadedLM,
)
"""The char-RNN in the registry (``rnnkit.tasks.TASKS["lm"]``)."""
