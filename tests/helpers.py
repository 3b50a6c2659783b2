"""Small shared builders for the tests."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

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


POEM = (
    "春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n"
)


def served_run(tmp_path: Path, steps: int = 30) -> Path:
    """A tiny trained char model whose vocabulary has English, quotes, brackets and a Chinese poem."""
    from rnnkit.cli import main

    english = text_corpus(tmp_path / "english.txt", 9_000).read_text(encoding="utf-8")
    quoted = 'he said "the cat (and dog) ran" home.\n' * 40
    source = tmp_path / "mixed.txt"
    source.write_text(english + quoted + POEM * 30, encoding="utf-8")
    run = tmp_path / "run"
    args = ["train", str(source), "--out", str(run), "--preset", "tiny", "--precision", "fp32"]
    args += ["--device", "cpu", "--quiet", "--max-steps", str(steps), "--sample-length", "0"]
    assert main(args) == 0
    return run


@contextmanager
def running(server):
    """Run a ``uvicorn.Server`` in a thread until the block ends; yields the port it bound."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def live_server(app):
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    import uvicorn

    with running(uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))) as port:
        yield f"http://127.0.0.1:{port}"


def events_of(text: str) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a server-sent-events answer."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def standin_cnn():
    """A stand-in for a torchvision/timm model in the captioner's --backbone tests: a conv net with a
    classifier named ``fc``, as torchvision's ResNets have."""
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, 6, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
            )
            self.fc = nn.Linear(6, 1000)

        def forward(self, x):
            return self.fc(self.body(x))

    return Net()


def run_cli(capsys, *args):
    """Run ``rnnkit ARGS`` in-process: (exit code, stdout, stderr)."""
    from rnnkit.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def sentiment_file(path, rows: int = 400, seed: int = 0, max_words: int = 12):
    """label<TAB>sentence rows: 1 holds a good word, 0 a bad one, among 3 to ``max_words`` filler words."""
    rng = random.Random(seed)
    good, bad = ["good", "great", "lovely", "fine"], ["bad", "awful", "poor", "dull"]
    filler = ["the", "movie", "was", "plot", "and", "it", "really", "a", "story"]
    lines = ["label\tsentence"]
    for _ in range(rows):
        label = rng.randint(0, 1)
        words = [rng.choice(filler) for _ in range(rng.randint(3, max_words))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(good if label else bad))
        lines.append(f"{label}\t{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ensemble_args(train, run, *more: str) -> list[str]:
    """``rnnkit classify train`` arguments for a small, fast classifier of a ``sentiment_file``."""
    args = ["classify", "train", str(train), "--text-column", "sentence", "--label-column", "label"]
    args += ["--out", str(run), "--max-steps", "30", "--eval-interval", "15", "--quiet", "--lr", "1e-2"]
    args += ["--hidden-size", "16", "--embedding-size", "16", "--batch-size", "16", "--device", "cpu"]
    args += ["--max-minutes", "0"]  # steps only: a busy machine must not shorten a member
    return [*args, "--set", "train.precision=fp32", *more]


def seasonal_csv(path, months: int = 144, noise: float = 0.0, seed: int = 0):
    """Monthly values with a trend and a yearly cycle, like the airline series."""
    rng = np.random.default_rng(seed)
    lines = ['"Month","Passengers"']
    for i in range(months):
        year, month = 1949 + i // 12, i % 12 + 1
        value = (100 + 2 * i) * (1 + 0.2 * math.sin(2 * math.pi * i / 12)) + noise * rng.standard_normal()
        lines.append(f'"{year}-{month:02d}",{value:.3f}')
    path.write_text("\n".join(lines) + "\n")
    return path


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""How the browser tests start Debian's chromium (headless, no network of its own, no first-run page)."""


@contextmanager
def spawned_rank(rank: int, world: int, port: int) -> Iterator[None]:
    """Inside a process of ``torch.multiprocessing.spawn``: join a ``world``-rank gloo group on ``port`` as
    torchrun would (its environment, then the CLI's own join, barrier and teardown)."""
    from rnnkit.train.distributed import from_environment

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    with from_environment("cpu"):
        yield
