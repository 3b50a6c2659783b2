"""The Free Spoken Digit Dataset: listing and splitting the recordings, the output characters, log-mel
features, their normalisation, padding and SpecAugment-style masking."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.data.audio import FeatureConfig, features_of
from rnnkit.data.vocab import Specials, TokenTable
from rnnkit.errors import DataError, UsageError

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
SPECIALS = Specials(pad="<pad>", start="<s>", end="</s>")  # <pad> (id 0) is also CTC's blank


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


def char_table(tokens: list[str], max_chars: int) -> TokenTable:
    """The output characters as a checkpoint lists them (``<pad>`` 0, also CTC's blank, ``<s>`` 1,
    ``</s>`` 2, then the letters); ``max_chars`` caps a decoded transcript (the table's ``max_length``)."""
    return TokenTable(tokens, SPECIALS, max_length=max_chars)


def build_chars(texts: list[str]) -> TokenTable:
    """The characters of ``texts`` in code-point order after the specials; a decoded transcript is
    capped at the longest training transcript plus 5. A character outside it is an error, never <unk>."""
    return TokenTable.build(texts, SPECIALS, order="token", max_length=max(map(len, texts)) + 5)


@dataclass
class Encoded:
    features: list[Tensor]
    targets: list[list[int]]
    names: list[str]


def audio_features(audio: Path | bytes, config: FeatureConfig) -> Tensor:
    """:func:`rnnkit.data.audio.features_of` of a WAV file, named by its path or given as its content
    (bytes, read from memory: nothing is written to disk)."""
    if isinstance(audio, bytes | bytearray | memoryview):
        return features_of(bytes(audio), config)
    return features_of(Path(audio), config)


def featurise(utterances: list[Utterance], config: FeatureConfig, chars: TokenTable) -> Encoded:
    feats = [features_of(u.path, config) for u in utterances]
    targets = [chars.encode(u.text, what=f"transcript {u.text!r}") for u in utterances]
    return Encoded(feats, targets, [u.path.name for u in utterances])


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


def global_stats(features: list[Tensor]) -> dict:
    stacked = torch.cat(features)
    return {"mean": stacked.mean(0).tolist(), "std": (stacked.std(0) + 1e-5).tolist()}


def apply_norm(features: list[Tensor], norm: dict) -> list[Tensor]:
    if not norm:
        return features
    mean, std = torch.tensor(norm["mean"]), torch.tensor(norm["std"])
    return [(f - mean) / std for f in features]
