"""``--preset auto``: the char-RNN's size and regularisation from the time budget, the machine's measured
speed and the corpus size, so that more time or a faster machine never gives a worse model.

The rule (fitted on development splits; the runs it came from are in docs/char-rnn.md, "How the budget rule
chooses", and ``bench/budget_fit.py`` reruns them):

1. **Probe.** Each rung of :data:`RUNGS` (a model size with its batch and learning rate) trains a few
   steps on random tokens in the run's precision; its steady speed :math:`s_k` (characters a second)
   says how many characters :math:`D_k = s_k \\cdot T \\cdot` :data:`USABLE` a budget of :math:`T`
   seconds lets it read.
2. **Size.** The largest rung that can read at least :data:`TOKENS_PER_PARAMETER` characters per
   parameter, :math:`D_k \\ge \\kappa P_k` (the smallest rung when none can). A larger budget or a
   faster machine raises every :math:`D_k`, so the rung never gets smaller.
3. **Regularisation.** The pressure to memorise grows with the passes over the corpus and with the
   parameters per corpus character: :math:`\\rho_k = (D_k / C)(P_k / C)`. Dropout
   rises with :math:`\\log_{10} \\rho` along the piecewise-linear :data:`DROPOUT_CURVE` (the best dropout the
   fitting runs found at each pressure), with :math:`\\rho` the largest over the chosen rung and
   the smaller ones (so it too never falls as the budget grows); locked dropout comes with it, weight-dropped
   recurrent matrices (as much as :math:`p`) from :data:`WEIGHT_DROP_ONSET` on, and AdamW's weight decay.

The presets ``small``, ``shakespeare``, ``poetry``, ``lyrics`` and ``code`` are the same rule with their own
budget and data settings (:data:`rnnkit.tasks.lm.config.RULED`; :func:`starting_config`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn import functional as F

from rnnkit.data.corpus import read_chunks, resolve_sources
from rnnkit.errors import UsageError
from rnnkit.train import hardware

if TYPE_CHECKING:
    from rnnkit.tasks.lm.config import DataConfig, LMConfig

log = logging.getLogger("rnnkit")


@dataclass(frozen=True)
class Rung:
    """One model size of the ladder, with the batch and learning rate it trains with."""

    num_layers: int
    hidden_size: int
    embedding_size: int
    batch_size: int
    lr: float

    @property
    def name(self) -> str:
        return f"{self.num_layers}x{self.hidden_size}"

    def parameters(self, vocab_size: int) -> int:
        """Parameters of an LSTM char model of this size (embedding, recurrent layers, head)."""
        h, e = self.hidden_size, self.embedding_size
        recurrent = sum(4 * h * ((e if layer == 0 else h) + h + 2) for layer in range(self.num_layers))
        return vocab_size * e + recurrent + vocab_size * (h + 1)


#: The ladder, smallest first. Batch 32 from 2x512 on: the bf16 kernels (AMX, GPUs) run wide batches
#: at many more characters a second, and these models want the characters more than the steps. The
#: batches and learning rates were not fitted (the 120 s development runs used these).
RUNGS: tuple[Rung, ...] = (
    Rung(1, 128, 64, 16, 6e-3),
    Rung(1, 256, 64, 16, 6e-3),
    Rung(2, 256, 64, 16, 5e-3),
    Rung(2, 512, 64, 32, 4e-3),
    Rung(3, 512, 64, 32, 3e-3),
    Rung(3, 768, 128, 32, 2e-3),
    Rung(3, 1024, 128, 64, 2e-3),
)

#: kappa: a larger rung is taken only if the budget lets it read at least this many characters per
#: parameter. Fitted: the larger rung lost at every ratio measured, reading 0.26 (3x512 against 2x512,
#: A6/A0), 0.69 (2x512 against 2x256, A0/A5) and, regularised as the rule does at 900 s, 5.8 (2x512 with
#: dropout 0.25 against 2x256 reading 53, G3/G2, by 0.006); kappa is the smallest ratio not yet seen to
#: lose, rounded up. (It was 2, the geometric middle of 0.69 and 6.7, before rows G: with it the 900 s
#: bench budget took 3x512 reading 2 characters per parameter.)
TOKENS_PER_PARAMETER = 6.0
#: Dropout by log10(rho): straight lines between these points (log10 rho, p), none before the first, the
#: last one's (MAX_DROPOUT) after it; rounded to 0.05. Fitted on the rows of docs/char-rnn.md:
#: - (1.0, 0): no dropout was best up to log10 rho 0.97 (A0 against A2, A5 against A1);
#: - (1.8, 0.25): 0.25 beat 0.4 at 1.78 (B1, B2) and beat 0.15 and 0 at 1.87-1.94 (G3, G0, G1);
#: - (2.4, 0.25): 0.25 still beat 0.4 at 2.36 (H1, H2);
#: - (2.9, 0.4): 0.4 beat 0.2 at 2.9 (C1, C2);
#: - (3.25, 0.5): not fitted; about the slope of the segment before, continued to MAX_DROPOUT.
#: (A single line, p = 0.2 (log10 rho - 1), was the rule before rows G and H: it gave 0.15 where 0.25
#: won at 900 s, and a line steep enough for that gave 0.4 where 0.25 won at 2.36.)
DROPOUT_CURVE: tuple[tuple[float, float], ...] = (
    (1.0, 0.0),
    (1.8, 0.25),
    (2.4, 0.25),
    (2.9, 0.4),
    (3.25, 0.5),
)
MAX_DROPOUT = DROPOUT_CURVE[-1][1]
#: Weight drop on W_hh (as much as the dropout) from this log10(rho) on, none below. Fitted: weight drop
#: 0.4 lost 0.063 nats against none at log10(rho) 1.8 (B2, B3) and won 0.043 at 2.6 (F1, F2), each
#: paying 20% of the speed; the onset is the middle of the two.
WEIGHT_DROP_ONSET = 2.2
#: AdamW's decoupled weight decay under the rule.
WEIGHT_DECAY = 0.1
#: Fraction of the budget the trainer spends training (the rest: evaluation, checkpoints, start-up).
USABLE = 0.9
#: Truncated-BPTT length of every rung.
SEQ_LEN = 100
#: A guard, not fitted: no rung with more parameters than this many per training character (a 200 KB
#: corpus stops at 2x512); the smallest rung is always allowed.
MAX_PARAMETERS_PER_CHAR = 20.0


@dataclass(frozen=True)
class Choice:
    """What the rule chose and why: the rung, its regularisation and the figures behind them."""

    rung: Rung
    dropout: float
    weight_drop: float
    chars_per_s: float
    characters: float  # D: characters the budget lets the rung read
    epochs: float  # D / C
    parameters: int
    pressure: float  # rho, after the monotone envelope

    def describe(self) -> str:
        regularised = f"dropout {self.dropout:.2f} locked" if self.dropout else "no dropout"
        if self.weight_drop:
            regularised += f", weight drop {self.weight_drop:.2f}"
        return (
            f"budget rule: lstm {self.rung.name} ({self.parameters / 1e6:.2f} M parameters), {regularised}, "
            f"batch {self.rung.batch_size}x{SEQ_LEN}, lr {self.rung.lr:g}: {self.chars_per_s:,.0f} chars/s "
            f"probed, {self.characters / 1e6:.1f} M characters = {self.epochs:.1f} passes over the corpus "
            f"(log10 rho {math.log10(max(self.pressure, 1e-12)):.2f})"
        )


def dropout_for(pressure: float) -> float:
    """The rule's dropout for a memorisation pressure ``rho`` (rounded to 0.05)."""
    points, values = zip(*DROPOUT_CURVE, strict=True)
    raw = float(np.interp(math.log10(max(pressure, 1e-12)), points, values))  # flat beyond both ends
    return round(raw * 20) / 20


def choose(seconds: float, corpus_chars: int, speeds: dict[Rung, float], vocab_size: int) -> Choice:
    """The rule itself, given each rung's measured speed (rungs missing from ``speeds`` are out of
    reach). Pure: the same inputs give the same choice."""
    if seconds <= 0:
        raise ValueError(f"seconds: expected a positive budget, got {seconds}")
    corpus = max(int(corpus_chars), 1)
    probed = [rung for rung in RUNGS if rung in speeds]
    if not probed:
        raise ValueError("speeds: expected the speed of at least one rung")
    chosen = probed[0]
    pressures = []
    for rung in probed:
        chars = speeds[rung] * seconds * USABLE
        params = rung.parameters(vocab_size)
        if rung is not probed[0] and (
            chars < TOKENS_PER_PARAMETER * params or params > MAX_PARAMETERS_PER_CHAR * corpus
        ):
            break
        chosen = rung
        pressures.append((chars / corpus) * (params / corpus))
    chars = speeds[chosen] * seconds * USABLE
    pressure = max(pressures)
    p = dropout_for(pressure)
    return Choice(
        rung=chosen,
        dropout=p,
        weight_drop=p if math.log10(max(pressure, 1e-12)) >= WEIGHT_DROP_ONSET else 0.0,
        chars_per_s=speeds[chosen],
        characters=chars,
        epochs=chars / corpus,
        parameters=chosen.parameters(vocab_size),
        pressure=pressure,
    )


def probe(
    vocab_size: int,
    seconds: float,
    corpus_chars: int,
    *,
    precision: str = "auto",
    device: str = "auto",
    window: float = 0.3,
) -> dict[Rung, float]:
    """Characters a second of a training step (forward, backward, AdamW) of each rung, on random tokens
    in ``precision`` on ``device``; stops at the first rung too large for ``seconds`` (the larger ones
    are slower and larger still). About a second a rung, once per process."""
    place = hardware.resolve_device(device)
    resolved = hardware.resolve_precision(precision, place)
    speeds: dict[Rung, float] = {}
    for rung in RUNGS:
        key = (str(place), resolved, vocab_size, rung)
        if key not in _MEASURED:
            _MEASURED[key] = _rung_speed(rung, vocab_size, place, resolved, window)
        speeds[rung] = _MEASURED[key]
        params = rung.parameters(vocab_size)
        if (
            speeds[rung] * seconds * USABLE < TOKENS_PER_PARAMETER * params
            or params > MAX_PARAMETERS_PER_CHAR * corpus_chars
        ):
            break
    return speeds


#: Speeds already probed in this process, by (device, precision, vocabulary size, rung): a second
#: config built in the same process sees the same machine and makes the same choice.
_MEASURED: dict[tuple[str, str, int, Rung], float] = {}


def _rung_speed(rung: Rung, vocab_size: int, place: torch.device, precision: str, window: float) -> float:
    from rnnkit.tasks.lm.config import ModelConfig
    from rnnkit.tasks.lm.model import CharLM

    config = ModelConfig(
        embedding_size=rung.embedding_size, hidden_size=rung.hidden_size, num_layers=rung.num_layers
    )
    model = CharLM(vocab_size, config).to(place)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab_size, (rung.batch_size, SEQ_LEN + 1), generator=generator).to(place)

    def train_step() -> None:
        with hardware.autocast(place, precision):
            logits, _ = model(ids[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, vocab_size), ids[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):  # warm-up: kernel choice (oneDNN builds its kernels at first use), allocations
        train_step()
    times: list[float] = []
    while len(times) < 3 or sum(times) < window:
        started = time.perf_counter()
        train_step()
        _sync(place)
        times.append(time.perf_counter() - started)
    return rung.batch_size * SEQ_LEN / statistics.median(times)  # the median: robust to a busy moment


def corpus_size(data: DataConfig) -> tuple[int, int]:
    """Training characters (the corpus less its validation fraction) and distinct characters of ``data``'s
    sources, read as the run will read them (one pass; the same one-line errors)."""
    total, seen = 0, set[str]()
    for doc in resolve_sources(data.sources, data.strict_folders):
        for chunk in read_chunks(doc, data.encoding, data.errors):
            total += len(chunk)
            seen.update(chunk)
    vocab = len(seen) if data.vocab == "char" else 256
    if data.max_vocab:
        vocab = min(vocab, data.max_vocab)
    return int(total * (1.0 - data.val_fraction)), max(vocab, 2)


def preset_auto(base: LMConfig) -> LMConfig:
    """The ``auto`` preset for ``base``'s data and budget (``train.max_minutes``), precision and device:
    measures the corpus, probes this machine and applies :func:`choose`. Logs what it chose."""
    from rnnkit.tasks.lm.config import LMConfig, ModelConfig

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UsageError(
            "--preset auto: the budget rule probes one process; under torchrun give another preset"
        )
    t = base.train
    if not t.max_minutes:
        raise UsageError("--preset auto: give the time budget with --max-minutes")
    seconds = t.max_minutes * 60
    corpus_chars, vocab_size = corpus_size(base.data)
    speeds = probe(vocab_size, seconds, corpus_chars, precision=t.precision, device=t.device)
    choice = choose(seconds, corpus_chars, speeds, vocab_size)
    log.info("%s", choice.describe())
    rung = choice.rung
    model = ModelConfig(
        cell="lstm",
        embedding_size=rung.embedding_size,
        hidden_size=rung.hidden_size,
        num_layers=rung.num_layers,
        dropout=choice.dropout,
        locked_dropout=choice.dropout > 0,
        weight_drop=choice.weight_drop,
    )
    train = dataclasses.replace(
        t,
        batch_size=rung.batch_size,
        seq_len=SEQ_LEN,
        lr=rung.lr,
        min_lr_ratio=0.05,
        warmup_steps=100,
        weight_decay=WEIGHT_DECAY,
        max_minutes=t.max_minutes,
        eval_interval=1000,
    )
    return LMConfig(preset=base.preset, model=model, data=base.data, train=train)


def starting_config(
    preset: str, values: Mapping[str, Any], settings: list[str] | None, sources: list[str] | None
) -> LMConfig:
    """The config ``rnnkit train --preset NAME`` starts from: the preset, sized by the rule when it is one
    of :data:`rnnkit.tasks.lm.config.RULED` (with the flags' values and ``--set`` applied first, so that
    the data, budget, precision and device they give are the ones measured; they are applied again
    after, and win over the rule's choice)."""
    from rnnkit.config import apply, override
    from rnnkit.tasks.lm.config import RULED, get_preset

    config = get_preset(preset)
    if preset not in RULED:
        return config
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and preset != "auto":
        log.info(
            "under torchrun, --preset %s keeps its fixed sizes (the budget rule probes one process)", preset
        )
        return config
    base = override(apply(apply(config, {"data.sources": sources}), dict(values)), list(settings or []))
    return preset_auto(base)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
