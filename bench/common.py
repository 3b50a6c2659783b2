"""Shared bits of the benchmark scripts: where the data is, and what machine this is."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch
from torch import nn


def data_dir() -> Path:
    """$RNNKIT_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("RNNKIT_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


#: CPU flags that decide which narrow types are native (AVX512-BF16/AMX: bf16; VNNI/AMX-INT8: int8)
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def cpu_flags() -> list[str]:
    """Which of :data:`FLAGS` this CPU has (from /proc/cpuinfo; empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    present = set(line.partition(":")[2].split())
    return [flag for flag in FLAGS if flag in present]


def machine() -> str:
    text = f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name()}"
    return text


class PlainLSTM(nn.Module):
    """The hand-written baseline: nn.Embedding + nn.LSTM + nn.Linear, plain PyTorch, nothing of rnnkit."""

    def __init__(self, vocab: int, hidden: int = 256, layers: int = 2, embedding: int = 64):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embedding)
        self.lstm = nn.LSTM(embedding, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids, state=None):
        out, state = self.lstm(self.embedding(ids), state)
        return self.head(out), state
