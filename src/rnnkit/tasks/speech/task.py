"""The speech task for the trainer, preparing a run's data, and the loaded recogniser (``load_speech``,
``LoadedSpeech``, the attention plot) with the registry's ``SPEC``."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from rnnkit.data.buckets import BucketStream
from rnnkit.data.items import a_list
from rnnkit.data.vocab import TokenTable
from rnnkit.errors import CheckpointError
from rnnkit.tasks.speech.config import TASK, SpeechConfig
from rnnkit.tasks.speech.data import (
    Encoded,
    apply_norm,
    audio_features,
    build_chars,
    char_table,
    featurise,
    global_stats,
    list_fsdd,
    pad_frames,
    spec_augment,
    split_fsdd,
)
from rnnkit.tasks.speech.metrics import scores, transcribe_encoded
from rnnkit.tasks.speech.model import ListenAttendSpell
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import (
    load_weights,
    task_config,
)
from rnnkit.train.rundir import no_symlink
from rnnkit.train.task import Setup, Task, TaskSpec

log = logging.getLogger("rnnkit")


# -------------------------------------------------------------------------------------------------
# the trainer's task


class SpeechTask(Task):
    name = TASK
    unit = "utterances"
    selection = ("val_accuracy", "max")

    def __init__(
        self, config: SpeechConfig, train: Encoded, val: Encoded, chars: TokenTable, norm: dict,
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
        hyps = transcribe_encoded(cast(ListenAttendSpell, model), self.val.features, self.chars)
        found = scores([self.chars.decode(t) for t in self.val.targets], hyps)
        return {"val_loss": total / count, "val_accuracy": found["accuracy"], "val_cer": found["cer"]}

    def on_evaluate(self, model: nn.Module, step: int) -> None:
        return None

    def checkpoint_extras(self) -> dict:
        return {
            "chars": self.chars.tokens,
            "max_chars": self.chars.max_length,
            "norm": self.norm,
        }


# -------------------------------------------------------------------------------------------------
# training and loading


def prepare_task(config: SpeechConfig, setup: Setup) -> SpeechTask:
    """List and split the recordings, compute their features and normalise them (with a resumed run's
    saved statistics and characters)."""
    d = config.data
    found = list_fsdd(Path(d.wav_dir))
    train_u, val_u, test_u = split_fsdd(found, d.holdout_speaker, d.val_fraction, config.train.seed)
    if setup.resumed is not None:
        chars, norm = saved_chars(setup.resumed)
    else:
        chars, norm = build_chars([u.text for u in train_u]), {}
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
    """A trained recogniser, as ``rnnkit.load(run_dir)`` returns it. Audio is a WAV file's path or its
    content (bytes, decoded in memory); an unreadable one is a one-line :class:`DataError`.

    Methods:

    - ``transcribe(audio, beam=1, decoder="attention") -> list[str]``: a transcript of each recording
      (``beam`` > 1: batched beam search; ``decoder="ctc"``: the CTC head's best path), what ``rnnkit
      speech transcribe`` prints and the server's ``/v1/transcribe`` gives.
    - ``attend(audio) -> dict``: ``{"text", "attention"}``, the greedy transcript and the speller's
      attention, one row per output character and ``</s>``, one column per listener step.
    - ``features(audio) -> list[Tensor]``: the normalised log-mel features ``(frames, n_mels)``.

    Attributes: ``model``, ``chars`` (the output characters), ``norm``, ``config``, ``checkpoint``.
    """

    model: ListenAttendSpell
    chars: TokenTable
    norm: dict
    config: SpeechConfig
    checkpoint: str

    def features(self, audio: list[Path | bytes]) -> list[Tensor]:
        a_list(audio, "features", "recordings (paths or bytes)")
        return apply_norm([audio_features(a, self.config.features) for a in audio], self.norm)

    def transcribe(self, audio: list[Path | bytes], beam: int = 1, decoder: str = "attention") -> list[str]:
        """The transcript of each recording: :func:`transcribe_encoded` of their features."""
        a_list(audio, "transcribe", "recordings (paths or bytes)")
        return transcribe_encoded(self.model, self.features(audio), self.chars, beam=beam, decoder=decoder)

    def attend(self, audio: Path | bytes) -> dict:
        """The greedy transcript of one recording and the attention that spelled it: ``{"text": str,
        "attention": [[float]]}``, a row per output character and one for ``</s>`` (each row sums to 1),
        a column per listener step."""
        text, weights = self._attention(self.features([audio])[0])
        return {"text": text, "attention": weights.tolist()}

    def _attention(self, feats: Tensor) -> tuple[str, Tensor]:
        """The greedy transcript of one utterance's features ``(frames, n_mels)`` and its attention
        ``(chars + 1, U)``."""
        device = next(self.model.parameters()).device
        lengths = torch.tensor([feats.shape[0]])
        ids, maps = self.model.greedy(feats[None].to(device), lengths, self.chars.max_length)
        return self.chars.decode(ids[0]), maps[0]


def saved_chars(loaded) -> tuple[TokenTable, dict]:
    """The output characters and feature normalisation a checkpoint's config.json records."""
    try:
        chars = char_table(loaded.config["chars"], loaded.config["max_chars"])
        return chars, loaded.config.get("norm") or {}
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
    text, found = loaded._attention(feats)
    weights = found.numpy()
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
