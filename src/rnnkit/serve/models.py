"""What the server holds: its config, the loaded models, the limits, and the request bodies it accepts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

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
MAX_TEXTS = 64
"""Most texts one /v1/classify or /v1/tag request may hold (they run as one batch)."""
MAX_SERIES = 100_000
"""Most values of a series sent to /v1/forecast."""
MAX_VALUE = 1e30
"""Largest magnitude of a value sent to /v1/forecast: the model reads float32 (at most about 3.4e38),
where a finite but huge value like 1e308 becomes infinity and the forecast NaN."""
MAX_BEAM = 16
"""Widest beam a /v1/transcribe or /v1/caption request may ask for."""
AUDIO_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave"})
"""The Content-Types /v1/transcribe accepts (a WAV file's bytes, whichever name the client uses)."""
IMAGE_TYPES = frozenset({"image/png", "image/jpeg"})
"""The Content-Types /v1/caption accepts."""
UPLOAD_PATHS = ("/v1/transcribe", "/v1/caption")
"""The endpoints whose body is a file: their bodies may be up to ``ServeConfig.max_upload`` bytes."""


@dataclass(kw_only=True)
class ServeConfig:
    runs: list[str]
    """Run folders, each ``PATH`` (named after the folder) or ``NAME=PATH``."""
    checkpoint: str = "best"
    device: str = "cpu"
    max_body: int = 1_000_000
    """Largest JSON request body in bytes; a larger one gets 413, counted on the bytes received."""
    max_upload: int = 5_000_000
    """Largest uploaded file (the body of /v1/transcribe and /v1/caption) in bytes; a larger one gets
    413, counted on the bytes received like ``max_body``."""
    max_audio_seconds: float = 20.0
    """Longest recording /v1/transcribe accepts (read from the WAV header); a longer one gets 413."""
    max_pixels: int = 4096 * 4096
    """Most pixels (width x height, read from the image header) /v1/caption accepts; more gets 413."""
    backbone: str = ""
    """The external backbone (``module:function``) that the captioner runs were trained with, named by
    the operator: loading never imports code a run folder names."""
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

    def __post_init__(self) -> None:
        for name in ("max_body", "max_upload", "max_pixels"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')}: expected 1 or more, got {getattr(self, name)}")
        if not 0 < self.max_audio_seconds < float("inf"):
            raise UsageError(f"--max-audio-seconds: expected more than 0, got {self.max_audio_seconds}")

    def trusted_hosts(self) -> list[str]:
        """The names besides the loopback ones a request may address: ``allowed_hosts``, and ``host``
        when it is one address rather than all of them."""
        bound = [] if self.host in ("0.0.0.0", "::", "") else [self.host]
        return [*self.allowed_hosts, *bound]


@dataclass
class Served:
    """One served run: its name, its task and the loaded model that ``rnnkit.load`` gives for it
    (``loaded``); ``model`` is that model's network and ``vocab`` a language model's vocabulary (the
    char-RNN endpoints drive the network directly, a few steps at a time)."""

    name: str
    run_dir: Path
    model: torch.nn.Module | None
    vocab: Vocabulary | None
    checkpoint: str
    info: dict = field(default_factory=dict)
    task: str = "lm"
    loaded: Any = None

    @property
    def text_vocab(self) -> Vocabulary:
        """A language model's vocabulary (the char-RNN endpoints are given language models only)."""
        if self.vocab is None:
            raise UsageError(f"model {self.name!r} is not a language model")
        return self.vocab


def parse_run(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if not sep:
        path = spec
        name = Path(spec).resolve().name
    if not name or not path:
        raise UsageError(f"run: expected PATH or NAME=PATH, got {spec!r}")
    return name, Path(path)


def parameters(loaded: Any) -> int:
    """Weights of a loaded model (an ensemble's members together)."""
    nets = [m.model for m in getattr(loaded, "members", [])] or [loaded.model]
    return sum(p.numel() for net in nets for p in net.parameters())


def describe(name: str, task: str, loaded: Any) -> dict:
    """What /v1/models says of a model: its name, task, checkpoint and size, and what a client needs to
    know to call it (a language model's cell and vocabulary, a classifier's labels, a tagger's kind...)."""
    info: dict[str, Any] = {"name": name, "task": task, "checkpoint": loaded.checkpoint}
    if task == "lm":
        m = loaded.config.model
        info |= {
            "cell": m.cell,
            "layers": m.num_layers,
            "hidden_size": m.hidden_size,
            "parameters": parameters(loaded),
            "vocabulary": len(loaded.vocab),
            "tokens": loaded.vocab.kind,
            "poem_form": loaded.vocab.kind == "char" and any(is_han(t) for t in loaded.vocab.tokens),
        }
        return info
    info["parameters"] = parameters(loaded)
    if task == "classify":
        info |= {"labels": list(loaded.labels), "tokens": loaded.kind}
    elif task == "tag":
        fmt = loaded.config.data.format
        info |= {
            "tags": list(loaded.tags),
            "tokens": loaded.inputs.kind,
            "kind": "segmentation" if fmt == "segmented" else "entities",
        }
    elif task == "forecast":
        data = loaded.config.data
        info |= {"horizon": data.horizon, "window": data.window, "column": data.column}
    elif task == "speech":
        info |= {"sample_rate": loaded.config.features.sample_rate, "characters": len(loaded.chars)}
    elif task == "caption":
        info |= {"image_size": loaded.config.model.image_size, "vocabulary": len(loaded.vocab)}
    return info


def load_models(config: ServeConfig) -> dict[str, Served]:
    """Every run of ``config.runs``, loaded once through :func:`rnnkit.tasks.load_run`, by name."""
    from rnnkit.tasks import load_run, task_of
    from rnnkit.train.hardware import resolve_device

    if not config.runs:
        raise UsageError("give at least one run folder to serve")
    device = str(resolve_device(config.device))
    models: dict[str, Served] = {}
    for spec in config.runs:
        name, path = parse_run(spec)
        if name in models:
            raise UsageError(f"two runs are named {name!r}: name them apart with NAME=PATH")
        task = task_of(path, config.checkpoint)
        options = {"backbone": config.backbone} if task == "caption" and config.backbone else {}
        loaded = load_run(path, config.checkpoint, device=device, task=task, **options)
        vocab = loaded.vocab if task == "lm" else None
        model = getattr(loaded, "model", None)
        models[name] = Served(name, path, model, vocab, loaded.checkpoint, describe(name, task, loaded),
                              task, loaded)  # fmt: skip
        log.debug("loaded %s (task %s) from %s, %s", name, task, path, loaded.checkpoint)
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


class TextsRequest(Body):
    texts: Annotated[
        list[Annotated[str, Field(max_length=MAX_TEXT)]], Field(min_length=1, max_length=MAX_TEXTS)
    ] = Field(..., description=f"1 to {MAX_TEXTS} texts, answered in one batch, in order.")


class ClassifyRequest(TextsRequest):
    pass


class TagRequest(TextsRequest):
    pass


class ForecastRequest(Body):
    series: (
        Annotated[
            list[Annotated[float, Field(ge=-MAX_VALUE, le=MAX_VALUE, allow_inf_nan=False)]],
            Field(min_length=1, max_length=MAX_SERIES),
        ]
        | None
    ) = Field(None, description="The values so far, oldest first; null: the end of the run's own series.")


class UploadQuery(BaseModel):
    """The query of an upload endpoint (the body is the file itself)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="A served model's name; default: the only one of its task.")
    beam: int = Field(1, ge=1, le=MAX_BEAM, description="Beam width (1: greedy).")


class TranscribeQuery(UploadQuery):
    attention: bool = Field(False, description="Also return the attention (greedy decoding only).")


class CaptionQuery(UploadQuery):
    pass
