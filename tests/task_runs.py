"""Tiny trained runs of every task, made in seconds through the command line, and inputs to feed them.

Each ``*_run(tmp)`` trains into ``tmp`` (a fresh folder) and returns the run folder; call them from
module-scoped fixtures with ``tmp_path_factory.mktemp(...)``. The runs are too small to be good: they
exist to be loaded, served and compared, not to be accurate.
"""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path

from tests import helpers

from rnnkit.cli import main

CPU = ["--device", "cpu", "--quiet"]
FSDD_SPEAKERS = ("jackson", "theo")
FSDD_DIGITS = (0, 1, 2)
FSDD_PER_VOICE = 8


def fsdd_dir() -> Path:
    """The shared FSDD recordings ($RNNKIT_DATA/fsdd/recordings)."""
    from tests.conftest import data_dir

    path = data_dir() / "fsdd" / "recordings"
    if not path.is_dir():
        raise FileNotFoundError(f"the FSDD recordings are missing at {path}; set RNNKIT_DATA")
    return path


def train(args: list[str]) -> None:
    """``rnnkit ARGS`` in-process on one CPU thread (models this small train many times faster on one
    thread than on two that other processes share), then torch's thread count as it was."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(args)
    finally:
        torch.set_num_threads(threads)
    assert code == 0, f"rnnkit {' '.join(args[:2])} exited with {code}"


# -------------------------------------------------------------------------------------------------
# classify


def sentiment_file(path: Path, rows: int = 300, seed: int = 0) -> Path:
    """:func:`tests.helpers.sentiment_file`, shorter sentences (3 to 10 words) and fewer rows."""
    return helpers.sentiment_file(path, rows, seed, max_words=10)


def classify_run(tmp: Path) -> Path:
    """A sentiment classifier (labels "0", "1") over words."""
    run = tmp / "classify-run"
    args = ["classify", "train", str(sentiment_file(tmp / "sentiment.tsv")), "--text-column", "sentence"]
    args += ["--label-column", "label", "--out", str(run), "--max-steps", "20", "--eval-interval", "20"]
    args += ["--hidden-size", "16", "--embedding-size", "16", "--batch-size", "16", "--lr", "1e-2"]
    train([*args, *CPU, "--set", "train.precision=fp32"])
    return run


# -------------------------------------------------------------------------------------------------
# tag


def segmented_file(path: Path, sentences: int = 300, seed: int = 0) -> Path:
    """Chinese sentences with words split by two spaces (the SIGHAN layout)."""
    rng = random.Random(seed)
    words = ["上海", "体育局", "召开", "会议", "我们", "今天", "学习", "了", "的", "新", "工作", "人民"]
    lines = ("  ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(sentences))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def entity_file(path: Path, sentences: int = 300, seed: int = 0) -> Path:
    """CoNLL token<TAB>tag lines: "<name> went to <place>" with B-PER and B-LOC."""
    rng = random.Random(seed)
    names, places = ["john", "mary", "li"], ["paris", "beijing", "rome"]
    lines: list[str] = []
    for _ in range(sentences):
        sentence = [(rng.choice(names), "B-PER"), ("went", "O"), ("to", "O"), (rng.choice(places), "B-LOC")]
        lines += [f"{w}\t{t}" for w, t in sentence] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


TAG_FLAGS = ["--hidden-size", "16", "--embedding-size", "16", "--lr", "1e-2", "--eval-interval", "20"]
TAG_FLAGS += ["--set", "model.bigram_size=0"]


def segment_run(tmp: Path) -> Path:
    """A Chinese word segmenter (characters tagged B/M/E/S-style)."""
    run = tmp / "segment-run"
    args = ["tag", "train", str(segmented_file(tmp / "segmented.txt")), "--format", "segmented"]
    train([*args, "--out", str(run), "--max-steps", "20", *TAG_FLAGS, *CPU, "--set", "train.precision=fp32"])
    return run


def entity_run(tmp: Path) -> Path:
    """A named-entity tagger (PER, LOC) over words."""
    run = tmp / "entity-run"
    args = ["tag", "train", str(entity_file(tmp / "ner.conll")), "--out", str(run)]
    train([*args, "--max-steps", "20", *TAG_FLAGS, *CPU, "--set", "train.precision=fp32"])
    return run


# -------------------------------------------------------------------------------------------------
# forecast


def seasonal_csv(path: Path, months: int = 144) -> Path:
    """Monthly values with a trend and a yearly cycle, like the airline series (one column)."""
    lines = ['"Month","Passengers"']
    for i in range(months):
        year, month = 1949 + i // 12, i % 12 + 1
        value = (100 + 2 * i) * (1 + 0.2 * math.sin(2 * math.pi * i / 12))
        lines.append(f'"{year}-{month:02d}",{value:.3f}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def forecast_run(tmp: Path) -> Path:
    """A one-column forecaster with a 12-month window; its saved series is ``tmp/air.csv``."""
    run = tmp / "forecast-run"
    args = ["forecast", "train", str(seasonal_csv(tmp / "air.csv")), "--column", "Passengers"]
    args += ["--out", str(run), "--window", "12", "--max-steps", "10", "--eval-interval", "10"]
    train([*args, "--hidden-size", "16", *CPU])
    return run


# -------------------------------------------------------------------------------------------------
# speech


def small_fsdd(folder: Path) -> Path:
    """Three digits from two speakers of the shared FSDD recordings (48 short WAV files: indices 0-4 of
    each are the test split, the rest train)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = fsdd_dir()
    for digit in FSDD_DIGITS:
        for speaker in FSDD_SPEAKERS:
            for index in range(FSDD_PER_VOICE):
                name = f"{digit}_{speaker}_{index}.wav"
                shutil.copy(source / name, folder / name)
    return folder


def speech_run(tmp: Path) -> Path:
    """A listen-attend-spell recogniser of the spoken digits zero, one and two."""
    run = tmp / "speech-run"
    args = ["speech", "train", str(small_fsdd(tmp / "fsdd")), "--out", str(run)]
    args += ["--max-steps", "6", "--eval-interval", "6", "--listener-size", "16", "--speller-size", "32"]
    train([*args, "--batch-size", "8", "--ctc-weight", "0.2", *CPU])
    return run


def a_wav(tmp: Path) -> Path:
    """A short spoken digit ("one", 8 kHz mono, under a second) copied from the shared FSDD data."""
    path = tmp / "one.wav"
    shutil.copy(fsdd_dir() / "1_theo_0.wav", path)
    return path


# -------------------------------------------------------------------------------------------------
# caption


def caption_run(tmp: Path) -> Path:
    """A captioner of 32x32 pictures of coloured shapes (``rnnkit caption make-shapes``)."""
    shapes = tmp / "shapes"
    train(["caption", "make-shapes", str(shapes), "--n", "40", "--size", "32"])
    run = tmp / "caption-run"
    args = ["caption", "train", str(shapes / "images"), str(shapes / "captions.csv"), "--out", str(run)]
    args += ["--max-steps", "8", "--eval-interval", "8", "--image-size", "32", "--cnn-width", "4"]
    train([*args, "--hidden-size", "16", "--batch-size", "8", *CPU, "--set", "data.min_count=1"])
    return run


def a_png(tmp: Path, size: int = 32) -> Path:
    """A small PNG: a red square on a white ground."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(picture).rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill="red")
    path = tmp / "square.png"
    picture.save(path, format="PNG")
    return path
