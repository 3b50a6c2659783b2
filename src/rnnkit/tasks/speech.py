r"""Speech recognition with Listen, Attend and Spell (Chan et al., 2016) on spoken digits.

The **listener** is a :class:`rnnkit.nn.Pyramid`: a BiLSTM over 40 log-mel bands every 10 ms and
pyramidal BiLSTM layers that halve the sequence each (8 times shorter with 3). The **speller** is an
LSTM that writes the transcript one character at a time; at each step it attends to the listener's
outputs :math:`h_u` with the paper's content attention,

.. math::
    e_{i,u} = \langle \phi(s_i), \psi(h_u) \rangle, \quad
    \alpha_{i} = \mathrm{softmax}_u(e_{i,u}), \quad c_i = \sum_u \alpha_{i,u} h_u,

    s_i = \mathrm{LSTM}(s_{i-1}, [y_{i-1}; c_{i-1}]), \quad
    P(y_i \mid x, y_{<i}) = \mathrm{softmax}(\mathrm{MLP}([s_i; c_i])),

trained with teacher forcing (the loss summed over every output character) and decoded greedily or by
beam search with length normalisation. An optional **CTC** head on the listener (``ctc_weight`` > 0)
adds :math:`\lambda\, \mathcal{L}_{CTC}` to the loss and gives a second, attention-free decoder.

The data is the Free Spoken Digit Dataset layout: ``{digit}_{speaker}_{index}.wav``, transcript the
digit's English word; the official test split is index 0-4; with ``holdout_speaker`` the test set is
that speaker's every recording and the model never hears them in training.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.config import check_rnn_fields
from rnnkit.data.audio import FeatureConfig, features_of
from rnnkit.data.buckets import BucketStream
from rnnkit.errors import CheckpointError, DataError, UsageError
from rnnkit.nn import LSTMState, Pyramid
from rnnkit.nn.cells import LSTMCell
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import (
    load_weights,
    task_config,
)
from rnnkit.train.config import TrainConfig, task_training
from rnnkit.train.rundir import no_symlink
from rnnkit.train.task import Setup, Task, TaskSpec

log = logging.getLogger("rnnkit")
TASK = "speech"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
PAD, SOS, EOS = "<pad>", "<s>", "</s>"  # <pad> (id 0) is also CTC's blank


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


# -------------------------------------------------------------------------------------------------
# data


@dataclass
class Utterance:
    path: Path
    text: str
    speaker: str
    index: int


def list_fsdd(wav_dir: Path) -> list[Utterance]:
    """Every ``{digit}_{speaker}_{index}.wav`` of ``wav_dir``, sorted by name."""
    wav_dir = Path(wav_dir)
    if not wav_dir.is_dir():
        raise DataError(f"{wav_dir}: no such folder (expected {{digit}}_{{speaker}}_{{index}}.wav files)")
    found = []
    for path in sorted(wav_dir.iterdir()):
        match = FSDD_NAME.match(path.name)
        if match:
            digit, speaker, index = match.groups()
            found.append(Utterance(path, DIGITS[int(digit)], speaker.lower(), int(index)))
    if not found:
        raise DataError(f"{wav_dir}: no files named {{digit}}_{{speaker}}_{{index}}.wav")
    return found


def split_fsdd(
    utterances: list[Utterance], holdout_speaker: str = "", val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Utterance], list[Utterance], list[Utterance]]:
    """(train, validation, test): test is index 0-4 (the official split) or the held-out speaker."""
    if holdout_speaker:
        speakers = sorted({u.speaker for u in utterances})
        if holdout_speaker.lower() not in speakers:
            have = ", ".join(speakers)
            raise UsageError(f"--holdout-speaker: no speaker {holdout_speaker!r} (have: {have})")
        test = [u for u in utterances if u.speaker == holdout_speaker.lower()]
        pool = [u for u in utterances if u.speaker != holdout_speaker.lower()]
    else:
        test = [u for u in utterances if u.index < 5]
        pool = [u for u in utterances if u.index >= 5]
    if len(pool) < 2:
        raise DataError("too few training recordings (need at least two outside the test split)")
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    cut = max(1, int(len(pool) * val_fraction))
    val = [pool[i] for i in sorted(order[:cut])]
    train = [pool[i] for i in sorted(order[cut:])]
    return train, val, test


class CharTable:
    """Output characters: ``<pad>`` (0, also CTC's blank), ``<s>`` (1), ``</s>`` (2), then letters.

    ``max_chars`` caps a decoded transcript: the longest training transcript plus 5.
    """

    def __init__(self, tokens: list[str], max_chars: int) -> None:
        self.tokens, self.max_chars = tokens, max_chars
        self.index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, texts: list[str]) -> CharTable:
        return cls([PAD, SOS, EOS, *sorted({ch for t in texts for ch in t})], max(map(len, texts)) + 5)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        missing = sorted({ch for ch in text if ch not in self.index})
        if missing:
            raise DataError(f"transcript {text!r}: characters the model cannot write: {''.join(missing)}")
        return [self.index[ch] for ch in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.tokens[i] for i in ids if i > 2)


@dataclass
class Encoded:
    features: list[Tensor]
    targets: list[list[int]]
    names: list[str]


def featurise(utterances: list[Utterance], config: FeatureConfig, chars: CharTable) -> Encoded:
    feats = [features_of(u.path, config) for u in utterances]
    return Encoded(feats, [chars.encode(u.text) for u in utterances], [u.path.name for u in utterances])


def pad_frames(features: list[Tensor]) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([f.shape[0] for f in features], dtype=torch.long)
    out = features[0].new_zeros(len(features), int(lengths.max()), features[0].shape[1])
    for i, f in enumerate(features):
        out[i, : f.shape[0]] = f
    return out, lengths


def spec_augment(x: Tensor, generator: random.Random) -> Tensor:
    """Two frequency bands (up to 6 channels) and two time spans (up to 10% of frames) set to 0."""
    x = x.clone()
    frames, bands = x.shape
    for _ in range(2):
        width = generator.randint(0, min(6, bands - 1))
        start = generator.randint(0, bands - width)
        x[:, start : start + width] = 0.0
        span = generator.randint(0, max(0, frames // 10))
        begin = generator.randint(0, frames - span)
        x[begin : begin + span] = 0.0
    return x


# -------------------------------------------------------------------------------------------------
# the model


class Speller(nn.Module):
    """An LSTM decoder that attends to the listener's outputs at every step (LAS's speller)."""

    def __init__(self, vocab: int, listener_size: int, config: SpeechModelConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, config.embedding_size)
        self.cell = LSTMCell(config.embedding_size + listener_size, config.speller_size)
        self.phi = nn.Sequential(nn.Linear(config.speller_size, config.attention_size), nn.Tanh())
        self.psi = nn.Sequential(nn.Linear(listener_size, config.attention_size), nn.Tanh())
        self.out = nn.Sequential(
            nn.Linear(config.speller_size + listener_size, config.speller_size),
            nn.Tanh(),
            nn.Dropout(config.dropout),
            nn.Linear(config.speller_size, vocab),
        )
        self.listener_size, self.size = listener_size, config.speller_size

    def start(self, memory: Tensor):
        n = memory.shape[0]
        zeros = memory.new_zeros(n, self.size)
        return LSTMState(zeros, zeros), memory.new_zeros(n, self.listener_size)

    def step(self, prev: Tensor, state, context: Tensor, memory: Tensor, keys: Tensor, mask: Tensor):
        """One output character: ``prev`` ``(N,)`` ids -> logits ``(N, V)``, state, context, weights."""
        state = self.cell(torch.cat([self.embedding(prev), context], dim=-1), state)
        energy = torch.einsum("na,nua->nu", self.phi(state.h), keys).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(energy, dim=-1)  # (N, U)
        context = torch.einsum("nu,nuh->nh", weights, memory)
        return self.out(torch.cat([state.h, context], dim=-1)), state, context, weights


class ListenAttendSpell(nn.Module):
    """``Pyramid`` listener + attending ``Speller`` (+ an optional CTC head on the listener)."""

    def __init__(self, n_mels: int, vocab: int, config: SpeechModelConfig) -> None:
        super().__init__()
        self.config = config
        self.listener = Pyramid(
            n_mels, config.listener_size, config.pyramid_layers, cell=config.cell,
            bottom_layers=config.bottom_layers, odd=config.odd, dropout=config.dropout, join=config.pyramid,
        )  # fmt: skip
        self.speller = Speller(vocab, self.listener.output_size, config)
        self.ctc = nn.Linear(self.listener.output_size, vocab) if config.ctc_weight > 0 else None

    def listen(self, feats: Tensor, lengths: Tensor):
        memory, out_lengths = self.listener(feats, lengths)
        steps = torch.arange(memory.shape[1], device=memory.device)
        mask = steps[None] < out_lengths.to(memory.device)[:, None]
        return memory, out_lengths, mask, self.speller.psi(memory)

    def forward(self, feats: Tensor, lengths: Tensor, targets: list[list[int]]):
        """Summed attention loss (teacher forcing) and summed CTC loss of the batch, and the characters."""
        memory, out_lengths, mask, keys = self.listen(feats, lengths)
        device = memory.device
        width = max(len(t) for t in targets) + 1
        inputs = torch.zeros(len(targets), width, dtype=torch.long, device=device)
        gold = torch.full((len(targets), width), -100, dtype=torch.long, device=device)
        for i, t in enumerate(targets):
            inputs[i, : len(t) + 1] = torch.tensor([1, *t], device=device)  # <s> y1 .. yn
            gold[i, : len(t) + 1] = torch.tensor([*t, 2], device=device)  # y1 .. yn </s>
        state, context = self.speller.start(memory)
        logits = []
        for i in range(width):
            out, state, context, _ = self.speller.step(inputs[:, i], state, context, memory, keys, mask)
            logits.append(out)
        scores = torch.stack(logits, dim=1).float()
        attention = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), gold.reshape(-1), reduction="sum")
        chars = int((gold != -100).sum())
        ctc = scores.new_zeros(())
        if self.ctc is not None:
            logp = torch.log_softmax(self.ctc(memory).float(), dim=-1).transpose(0, 1)  # (U, N, V)
            flat = torch.tensor([c for t in targets for c in t], dtype=torch.long)
            target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
            ctc = F.ctc_loss(
                logp, flat, out_lengths, target_lengths, blank=0, reduction="sum", zero_infinity=True
            )
        return attention, ctc, chars

    @torch.no_grad()
    def greedy(self, feats: Tensor, lengths: Tensor, max_chars: int):
        """Greedy transcripts of a batch, and each one's attention weights ``(chars, U)``."""
        memory, out_lengths, mask, keys = self.listen(feats, lengths)
        n = memory.shape[0]
        state, context = self.speller.start(memory)
        prev = torch.ones(n, dtype=torch.long, device=memory.device)
        outs, weights, done = [], [], torch.zeros(n, dtype=torch.bool, device=memory.device)
        for _ in range(max_chars + 1):
            logits, state, context, w = self.speller.step(prev, state, context, memory, keys, mask)
            prev = logits.argmax(-1)
            outs.append(prev)
            weights.append(w)
            done |= prev == 2
            if bool(done.all()):
                break
        ids = torch.stack(outs, 1).tolist()
        att = torch.stack(weights, 1)  # (N, steps, U)
        result, maps = [], []
        for i, row in enumerate(ids):
            end = row.index(2) if 2 in row else len(row)
            result.append(row[:end])
            maps.append(att[i, : end + 1, : int(out_lengths[i])].cpu())
        return result, maps

    @torch.no_grad()
    def beam(self, feats: Tensor, length: int, beam_size: int, max_chars: int, alpha: float = 1.0):
        """Beam search over one utterance ``(1, T, F)``: the best transcript by log P / len^alpha."""
        memory, out_lengths, mask, keys = self.listen(feats, torch.tensor([length]))
        state, context = self.speller.start(memory)
        beams = [(0.0, [], state, context, [])]  # (log p, ids, state, context, weights)
        finished = []
        for _ in range(max_chars + 1):
            prev = torch.tensor([b[1][-1] if b[1] else 1 for b in beams], device=memory.device)
            k = len(beams)
            st = LSTMState(torch.cat([b[2].h for b in beams]), torch.cat([b[2].c for b in beams]))
            ctx = torch.cat([b[3] for b in beams])
            logits, st, ctx, w = self.speller.step(
                prev, st, ctx, memory.expand(k, -1, -1), keys.expand(k, -1, -1), mask.expand(k, -1)
            )
            logp = torch.log_softmax(logits.float(), -1)
            candidates = []
            for i, (score, ids, _, _, ws) in enumerate(beams):
                values, index = logp[i].topk(min(beam_size, logp.shape[-1]))
                for v, j in zip(values.tolist(), index.tolist(), strict=True):
                    candidates.append((score + v, [*ids, j], i, [*ws, w[i].cpu()]))
            candidates.sort(key=lambda c: -c[0])
            beams = []
            for score, ids, parent, ws in candidates[:beam_size]:  # the k best go on, or end here
                if ids[-1] == 2:
                    finished.append((score / (len(ids) ** alpha), ids[:-1], ws))
                else:
                    beams.append((score, ids, LSTMState(st.h[parent : parent + 1], st.c[parent : parent + 1]),
                                  ctx[parent : parent + 1], ws))  # fmt: skip
            if not beams or len(finished) >= beam_size:
                break
        if not finished:  # nothing ended within max_chars: take the best unfinished one
            finished = [(b[0] / (len(b[1]) ** alpha), b[1], b[4]) for b in beams]
        _, ids, ws = max(finished, key=lambda f: f[0])
        return ids, torch.stack(ws)[:, : int(out_lengths[0])]

    @torch.no_grad()
    def ctc_greedy(self, feats: Tensor, lengths: Tensor) -> list[list[int]]:
        """Best-path CTC decoding: the most likely label per step, repeats merged, blanks removed."""
        if self.ctc is None:
            raise UsageError("--decoder ctc: this model was trained without a CTC head (--ctc-weight 0)")
        memory, out_lengths = self.listener(feats, lengths)
        best = self.ctc(memory).argmax(-1).tolist()
        result = []
        for row, n in zip(best, out_lengths.tolist(), strict=True):
            ids, prev = [], 0
            for label in row[:n]:
                if label != prev and label > 2:
                    ids.append(label)
                prev = label
            result.append(ids)
        return result


# -------------------------------------------------------------------------------------------------
# scoring


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def scores(references: list[str], hypotheses: list[str]) -> dict:
    """Word (whole-transcript) accuracy and character error rate (edits / reference characters)."""
    right = sum(r == h for r, h in zip(references, hypotheses, strict=True))
    edits = sum(edit_distance(r, h) for r, h in zip(references, hypotheses, strict=True))
    return {"accuracy": right / len(references), "cer": edits / max(1, sum(len(r) for r in references))}


def transcribe_encoded(
    model: ListenAttendSpell,
    features: list[Tensor],
    chars: CharTable,
    *,
    beam: int = 1,
    decoder: str = "attention",
    batch_size: int = 64,
) -> list[str]:
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = [""] * len(features)
    order = sorted(range(len(features)), key=lambda i: features[i].shape[0])
    limit = chars.max_chars
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        x, lengths = pad_frames([features[i] for i in rows])
        x = x.to(device)
        if decoder == "ctc":
            found = model.ctc_greedy(x, lengths)
        elif beam > 1:
            found = [model.beam(x[j : j + 1, : int(lengths[j])], int(lengths[j]), beam, limit)[0]
                     for j in range(len(rows))]  # fmt: skip
        else:
            found = model.greedy(x, lengths, limit)[0]
        for i, ids in zip(rows, found, strict=True):
            out[i] = chars.decode(ids)
    return out


# -------------------------------------------------------------------------------------------------
# the trainer's task


class SpeechTask(Task):
    name = TASK
    unit = "utterances"
    selection = ("val_accuracy", "max")

    def __init__(
        self, config: SpeechConfig, train: Encoded, val: Encoded, chars: CharTable, norm: dict,
        world_size: int = 1,
    ) -> None:  # fmt: skip
        self.config, self.train, self.val, self.chars, self.norm = config, train, val, chars, norm
        t = config.train
        frames = [f.shape[0] for f in train.features]
        self.stream = BucketStream(frames, t.batch_size * world_size, t.seed, min_rows=world_size)

    def next_batch(self):
        # the masks of a row follow from (seed, epoch, position, row), so a resumed run draws the same
        # ones, and so does each rank under DDP whatever its share of the batch
        where = f"{self.config.train.seed}-{self.stream.epoch}-{self.stream.index}"
        rows = self.stream.next_rows()
        mine = self.shard(rows)
        feats = [self.train.features[i] for i in mine]
        if self.config.data.augment:
            feats = [spec_augment(f, random.Random(f"{where}-{i}")) for f, i in zip(feats, mine, strict=True)]
        x, lengths = pad_frames(feats)
        chars = lambda rows: sum(len(self.train.targets[i]) + 1 for i in rows)  # noqa: E731 (with </s>)
        share = self.share(chars(mine), chars(rows))
        return (x, lengths, [self.train.targets[i] for i in mine], share), False

    def data_state(self) -> dict:
        return self.stream.state()

    def load_data_state(self, state: dict) -> None:
        self.stream.load_state(state)

    def training_loss(self, model: nn.Module, batch, carry):
        x, lengths, targets, share = batch
        attention, ctc, chars = model(x, lengths, targets)
        w = self.config.model.ctc_weight
        return ((1 - w) * attention + w * ctc) / chars * share, None, int(x.shape[0])

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        total, count = 0.0, 0
        for start in range(0, len(self.val.features), 128):
            x, lengths = pad_frames(self.val.features[start : start + 128])
            attention, _, chars = model(x.to(device), lengths, self.val.targets[start : start + 128])
            total, count = total + float(attention), count + chars
        hyps = transcribe_encoded(model, self.val.features, self.chars)
        found = scores([self.chars.decode(t) for t in self.val.targets], hyps)
        return {"val_loss": total / count, "val_accuracy": found["accuracy"], "val_cer": found["cer"]}

    def on_evaluate(self, model: nn.Module, step: int) -> None:
        return None

    def checkpoint_extras(self) -> dict:
        return {
            "chars": self.chars.tokens,
            "max_chars": self.chars.max_chars,
            "norm": self.norm,
        }


# -------------------------------------------------------------------------------------------------
# training and loading


def global_stats(features: list[Tensor]) -> dict:
    stacked = torch.cat(features)
    return {"mean": stacked.mean(0).tolist(), "std": (stacked.std(0) + 1e-5).tolist()}


def apply_norm(features: list[Tensor], norm: dict) -> list[Tensor]:
    if not norm:
        return features
    mean, std = torch.tensor(norm["mean"]), torch.tensor(norm["std"])
    return [(f - mean) / std for f in features]


def prepare_task(config: SpeechConfig, setup: Setup) -> SpeechTask:
    """List and split the recordings, compute their features and normalise them (with a resumed run's
    saved statistics and characters)."""
    d = config.data
    found = list_fsdd(Path(d.wav_dir))
    train_u, val_u, test_u = split_fsdd(found, d.holdout_speaker, d.val_fraction, config.train.seed)
    if setup.resumed is not None:
        chars, norm = saved_chars(setup.resumed)
    else:
        chars, norm = CharTable.build([u.text for u in train_u]), {}
    train = featurise(train_u, config.features, chars)
    val = featurise(val_u, config.features, chars)
    if config.features.normalise == "global":
        norm = norm or global_stats(train.features)
        train.features, val.features = apply_norm(train.features, norm), apply_norm(val.features, norm)
    task = SpeechTask(config, train, val, chars, norm, world_size=setup.world_size)
    speakers = sorted({u.speaker for u in train_u})
    log.info(
        "data: %d training, %d validation, %d test recordings; speakers %s%s; %s listener steps per frame",
        len(train_u), len(val_u), len(test_u), ", ".join(speakers),
        f" (held out: {d.holdout_speaker})" if d.holdout_speaker else "",
        f"1/{2 ** config.model.pyramid_layers if config.model.pyramid else 1}",
    )  # fmt: skip
    return task


@dataclass
class LoadedSpeech:
    model: ListenAttendSpell
    chars: CharTable
    norm: dict
    config: SpeechConfig
    checkpoint: str

    def features(self, paths: list[Path]) -> list[Tensor]:
        return apply_norm([features_of(p, self.config.features) for p in paths], self.norm)

    def transcribe(self, paths: list[Path], beam: int = 1, decoder: str = "attention") -> list[str]:
        return transcribe_encoded(self.model, self.features(paths), self.chars, beam=beam, decoder=decoder)


def saved_chars(loaded) -> tuple[CharTable, dict]:
    """The output characters and feature normalisation a checkpoint's config.json records."""
    try:
        return CharTable(loaded.config["chars"], loaded.config["max_chars"]), loaded.config.get("norm") or {}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{loaded.folder}: config.json lacks the output characters ({exc})") from None


def saved_speech_config(run_dir: Path) -> SpeechConfig:
    return task_config(run_dir, "last", TASK, SpeechConfig, "a speech model")[1]


def load_speech(run_dir: Path, which: str = "best", device: str = "cpu") -> LoadedSpeech:
    loaded, config = task_config(run_dir, which, TASK, SpeechConfig, "a speech model")
    chars, norm = saved_chars(loaded)
    model = build_checked(
        lambda: ListenAttendSpell(config.features.n_mels, len(chars), config.model), checkpoint=loaded
    )
    load_weights(model, loaded)
    model.to(device).eval()
    return LoadedSpeech(model, chars, norm, config, loaded.name)


def plot_attention(loaded: LoadedSpeech, path: Path, out: Path) -> str:
    """The log-mel features of ``path`` above the speller's attention over the listener's steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    feats = loaded.features([path])[0]
    model = loaded.model
    ids, maps = model.greedy(feats[None], torch.tensor([feats.shape[0]]), loaded.chars.max_chars)
    text, weights = loaded.chars.decode(ids[0]), maps[0].numpy()
    labels = [*text, "</s>"]
    hop = loaded.config.features.hop_ms / 1000
    reduction = model.listener.reduction
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), gridspec_kw={"height_ratios": [1, 1.2]})
    seconds = feats.shape[0] * hop
    top.imshow(feats.T.numpy(), origin="lower", aspect="auto", extent=(0, seconds, 0, feats.shape[1]))
    top.set(ylabel="mel band", title=f"{path.name}: heard {text!r}")
    span = weights.shape[1] * reduction * hop
    bottom.imshow(weights, aspect="auto", cmap="Blues", extent=(0, span, len(labels), 0))
    bottom.set_yticks([i + 0.5 for i in range(len(labels))], labels)
    bottom.set(xlabel=f"seconds (each listener step covers {reduction} frames)", ylabel="output character",
               xlim=(0, seconds))  # fmt: skip
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(no_symlink(out), dpi=110)
    plt.close(fig)
    return text


SPEC = TaskSpec(
    name=TASK,
    config=SpeechConfig,
    prepare=prepare_task,
    build_model=lambda task: ListenAttendSpell(
        task.config.features.n_mels, len(task.chars), task.config.model
    ),
    load=load_speech,
    loaded=LoadedSpeech,
)
"""The speech recogniser in the registry (``rnnkit.tasks.TASKS["speech"]``)."""
