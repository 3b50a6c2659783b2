"""Small shared builders for the tests."""

from __future__ import annotations

import random
from pathlib import Path

from rnnkit.data.corpus import encode_corpus, resolve_sources
from rnnkit.tasks.lm import LMConfig, get_preset


def text_corpus(path: Path, chars: int = 20_000, seed: int = 0) -> Path:
    """A file of pseudo-English: a few words in random order, with newlines."""
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"]
    out, size = [], 0
    while size < chars:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + ".\n"
        out.append(line)
        size += len(line)
    path.write_text("".join(out)[:chars], encoding="utf-8")
    return path


def tiny_config(source: Path, **train) -> LMConfig:
    config = get_preset("tiny")
    config.data.sources = [str(source)]
    config.data.val_fraction = 0.1
    for key, value in train.items():
        setattr(config.train, key, value)
    config.train.sample_length = 0
    config.train.device = "cpu"
    config.train.precision = "fp32"
    return config


def tiny_corpus(tmp_path: Path, chars: int = 20_000):
    source = text_corpus(tmp_path / "text.txt", chars)
    return encode_corpus(resolve_sources([str(source)]), tmp_path / "enc", val_fraction=0.1)
