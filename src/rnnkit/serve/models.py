"""What the server holds: its config, the loaded models, the limits, and the request bodies it accepts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import UsageError
from rnnkit.generate import is_han

log = logging.getLogger("rnnkit.serve")


STATIC = Path(__file__).parent / "static"
MAX_LENGTH = 10_000
"""Most tokens one generate request may ask for."""
MAX_TEXT = 10_000
"""Most characters of a prime or of a text to score."""
MAX_INSPECT = 5_000
"""Most characters of a text to inspect (its activations travel as T x H bytes)."""


@dataclass(kw_only=True)
class ServeConfig:
    runs: list[str]
    """Run folders, each ``PATH`` (named after the folder) or ``NAME=PATH``."""
    checkpoint: str = "best"
    device: str = "cpu"
    max_body: int = 1_000_000
    """Largest request body in bytes; a larger one gets 413, counted on the bytes received."""
    body_timeout: float = 30.0
    """Seconds a request body may take to arrive in full; a slower one gets 408."""
    workers: int = 1
    """How many requests may run the models at once; the others wait their turn, in order, and take
    turns BURST model steps at a time, so one long generation never holds up the rest. Letting every
    request run at once made the threads fight over the interpreter and the cores: bench/serve_load.py
    measured 8.2 generate requests/s with all 32 at once on two cores against about 30 with 1 slot."""
    title: str = "rnnkit"
    allowed_hosts: list[str] = field(default_factory=list)
    """Names (``Host`` headers, any port) answered besides the loopback ones (127.0.0.1, localhost,
    ::1) and a specific address the server is bound to; ``"*"``: any name (no DNS-rebinding guard)."""
    host: str = "127.0.0.1"
    """Address :func:`rnnkit.serve.server.serve` binds; anything but loopback exposes the API."""
    port: int = 8000
    """TCP port :func:`rnnkit.serve.server.serve` listens on."""
    header_timeout: float = 10.0
    """Seconds a request's head (request line and headers) may take to arrive; then the connection
    is closed."""
    keep_alive: int = 5
    """Seconds an idle keep-alive connection stays open."""
    max_header: int = 16_384
    """Largest request head in bytes (a larger one gets 400)."""
    max_connections: int = 512
    """Open connections beyond which new requests get 503."""

    def trusted_hosts(self) -> list[str]:
        """The names besides the loopback ones a request may address: ``allowed_hosts``, and ``host``
        when it is one address rather than all of them."""
        bound = [] if self.host in ("0.0.0.0", "::", "") else [self.host]
        return [*self.allowed_hosts, *bound]


@dataclass
class Served:
    name: str
    run_dir: Path
    model: torch.nn.Module
    vocab: Vocabulary
    checkpoint: str
    info: dict = field(default_factory=dict)


def parse_run(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if not sep:
        path = spec
        name = Path(spec).resolve().name
    if not name or not path:
        raise UsageError(f"run: expected PATH or NAME=PATH, got {spec!r}")
    return name, Path(path)


def load_models(config: ServeConfig) -> dict[str, Served]:
    from rnnkit.tasks import load_run
    from rnnkit.train.hardware import resolve_device

    if not config.runs:
        raise UsageError("give at least one run folder to serve")
    device = str(resolve_device(config.device))
    models: dict[str, Served] = {}
    for spec in config.runs:
        name, path = parse_run(spec)
        if name in models:
            raise UsageError(f"two runs are named {name!r}: name them apart with NAME=PATH")
        loaded = load_run(path, config.checkpoint, device=device, task="lm")  # the server writes text
        m = loaded.config.model
        info = {
            "name": name,
            "checkpoint": loaded.checkpoint,
            "cell": m.cell,
            "layers": m.num_layers,
            "hidden_size": m.hidden_size,
            "parameters": sum(p.numel() for p in loaded.model.parameters()),
            "vocabulary": len(loaded.vocab),
            "tokens": loaded.vocab.kind,
            "poem_form": loaded.vocab.kind == "char" and any(is_han(t) for t in loaded.vocab.tokens),
        }
        models[name] = Served(name, path, loaded.model, loaded.vocab, loaded.checkpoint, info)
    return models


# -------------------------------------------------------------------------------------------------
# request bodies


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="A served model's name; default: the first one.")


class GenerateRequest(Body):
    prime: str = Field("", max_length=MAX_TEXT, description="Text to start from (read, then continued).")
    length: int = Field(200, ge=0, le=MAX_LENGTH, description="Tokens to generate (a poem form: its own).")
    temperature: float = Field(0.8, ge=0, le=10, allow_inf_nan=False, description="0: greedy.")
    top_k: int = Field(0, ge=0, le=100_000, description="Sample among the k most likely (0: all).")
    top_p: float = Field(1.0, gt=0, le=1, allow_inf_nan=False, description="Nucleus sampling mass (1: all).")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Same seed, same text.")
    stop: str | None = Field(None, min_length=1, max_length=100, description="End after this text.")
    acrostic: str = Field("", max_length=64, description="A Chinese poem whose lines open with these.")
    line_chars: int = Field(0, ge=0, le=32, description="Poem form: characters per line (5 or 7).")
    lines: int = Field(0, ge=0, le=64, description="Poem form: lines (default: the acrostic's or 4).")
    candidates: int = Field(0, ge=0, le=20, description="Top candidates to return for each token.")
    stream: bool = Field(False, description="Send Server-Sent Events as tokens come.")


class ScoreRequest(Body):
    text: str = Field(..., min_length=2, max_length=MAX_TEXT)
    top: int = Field(5, ge=0, le=20, description="Top candidates to return for each position.")


class InspectRequest(Body):
    text: str = Field(..., min_length=2, max_length=MAX_INSPECT)
    layer: int = Field(-1, ge=-64, le=63, description="Which layer (-1: the top).")
    state: Literal["auto", "h", "c"] = Field("auto", description="h, or c (an LSTM's cell, tanh).")
    top: int = Field(5, ge=1, le=50, description="Units listed per feature.")
    units: Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=64)] = Field(
        default_factory=list, description="Units whose activations to return as plain numbers too."
    )


# -------------------------------------------------------------------------------------------------
# the app
