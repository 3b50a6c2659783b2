"""The HTTP API and the playground: ``create_app(ServeConfig(runs=[...]))`` gives a FastAPI app.

Models are loaded once, when the app is made, from the run folders the operator names; a request
chooses one by name and can never name a path. Generation, scoring and inspection run in worker threads
(``run_in_threadpool``, or Starlette's thread iteration of a streamed response), so the event loop
keeps answering while a long request works.

Endpoints (all JSON; errors are ``{"error": "one line"}`` with a 4xx status):

- ``GET /healthz``, ``GET /v1/models``
- ``POST /v1/generate``: text from a prime; ``"stream": true`` sends Server-Sent Events, one ``token``
  event per generated token and a final ``done`` event
- ``POST /v1/score``: nats per token of a text, each token's probability and the top candidates
- ``POST /v1/inspect``: one layer's activations after every token (int8, base64) and the units most
  correlated with simple features of the text
- ``GET /``: the playground (static HTML and JavaScript, no build step); ``/docs``: OpenAPI

Every failure is JSON, an unexpected one too (a 500 whose body holds no traceback); on a stream it is an
``error`` event, after which the stream ends. The guards of :mod:`rnnkit.serve.guards` (body bytes
counted as they arrive, trusted ``Host`` names, security headers) wrap the app, and a generation whose
client has gone stops within ``BURST`` steps.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import anyio
import torch
from fastapi import FastAPI, Request
from fastapi.concurrency import iterate_in_threadpool, run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from rnnkit import xray
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import CheckpointError, RnnkitError, TrainingError, UsageError
from rnnkit.generate import PoemForm, SamplingConfig, is_han, sample
from rnnkit.serve.guards import BodyLimit, CatchAll, SecurityHeaders, TrustedHosts

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


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(config: ServeConfig) -> FastAPI:
    """The app, with every model of ``config.runs`` loaded (a bad run folder raises here, not later)."""
    models = load_models(config)
    default = next(iter(models))
    gate = FairGate(max(1, config.workers))

    def gated(fn, *args):
        with gate:
            return fn(*args)

    app = FastAPI(
        title=config.title,
        summary="Character-level RNN language models: generate, score, inspect.",
        version="1",
        docs_url=None,  # served below from the swagger-ui-bundle package: no CDN, works offline
        redoc_url=None,
    )
    app.state.models = models

    def pick(name: str | None) -> Served:
        served = models.get(name or default)
        if served is None:
            raise HTTPException(404, f"no model named {name!r} (served: {', '.join(models)})")
        return served

    # added innermost first: a request meets SecurityHeaders, TrustedHosts, CatchAll, then BodyLimit
    app.add_middleware(BodyLimit, limit=config.max_body, timeout=config.body_timeout)
    app.add_middleware(CatchAll)
    app.add_middleware(TrustedHosts, hosts=config.trusted_hosts())
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return error(422, f"body: not valid JSON ({first.get('ctx', {}).get('error', 'cannot parse')})")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return error(422, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RnnkitError)
    async def user_error(request: Request, exc: RnnkitError):
        # what the request asks is impossible for this model: 400; a broken model is the server's fault
        server_side = isinstance(exc, CheckpointError | TrainingError)
        if server_side:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return error(503 if server_side else 400, str(exc))

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "models": len(models)}

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"models": [m.info for m in models.values()], "default": default}

    @app.post("/v1/generate")
    async def generate(body: GenerateRequest, request: Request):
        served = pick(body.model)
        job = prepare_generation(served, body, gate)  # checks everything before a stream starts
        if body.stream:
            return StreamingResponse(
                streamed(job), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
            )
        return await while_connected(request, job.cancel, collect, job)

    @app.post("/v1/score")
    async def score(body: ScoreRequest):
        served = pick(body.model)
        found = await run_in_threadpool(
            gated, xray.token_scores, served.model, served.vocab, body.text, body.top
        )
        count = len(found.tokens) - 1
        if count < 1:
            raise UsageError("text: needs at least two tokens to score")
        per = found.nats / count
        return {
            "model": served.name,
            "tokens": found.tokens,
            "scored": count,
            "nats_per_token": per,
            "bits_per_token": per / math.log(2),
            "perplexity": math.exp(per),
            "probabilities": found.probabilities,
            "candidates": found.candidates if body.top else None,
        }

    @app.post("/v1/inspect")
    async def inspect(body: InspectRequest):
        served = pick(body.model)

        def work() -> dict:
            found = xray.activations(served.model, served.vocab, body.text, body.layer, body.state)
            return inspection(served.name, found, body.top, body.units)

        return await run_in_threadpool(gated, work)

    @app.get("/", include_in_schema=False)
    def playground():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{config.title}: API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def while_connected(request: Request, cancel: threading.Event, work: Callable, *args):
    """``work(*args)`` in a worker thread, with ``cancel`` set if the client disconnects meanwhile (the
    body has been read by then, so the next message the server has for this request is the disconnect,
    or the end of the answer)."""

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        cancel.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watch)
        try:
            return await run_in_threadpool(work, *args)
        finally:
            tasks.cancel_scope.cancel()


async def streamed(job: Generation):
    """The events of :func:`sse`, pulled in worker threads. When the client goes, Starlette stops pulling
    and cancels this, which tells a generation still waiting for its turn to leave the line."""
    try:
        async for event in iterate_in_threadpool(sse(job)):
            yield event
    finally:
        job.cancel.set()


class FairGate:
    """``slots`` places, given in the order they were asked for. (A plain ``threading.Semaphore`` lets
    the thread that has just released it take it straight back, so a long generation would starve the
    requests waiting behind it.)"""

    def __init__(self, slots: int) -> None:
        self._cond = threading.Condition()
        self._free = slots
        self._queue: collections.deque[object] = collections.deque()

    def acquire(self, cancel: threading.Event | None = None) -> bool:
        """Wait for a slot; ``False`` (and no slot) if ``cancel`` is set first."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            while self._queue[0] is not ticket or not self._free:
                if cancel is not None and cancel.is_set():  # gone while in line: leave the line
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                    return False
                self._cond.wait(None if cancel is None else 0.1)
            self._queue.popleft()
            self._free -= 1
            self._cond.notify_all()  # the next in line may take a free slot too
        return True

    def release(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def inspection(name: str, found: xray.Activations, top: int, units: list[int]) -> dict:
    """The JSON of an inspection (also embedded in ``rnnkit inspect`` reports)."""
    size = found.values.shape[1]
    bad = [u for u in units if u >= size]
    if bad:
        raise UsageError(f"units: the layer has {size} units (0..{size - 1}), got {bad[0]}")
    return {
        "model": name,
        "tokens": found.tokens,
        "layer": found.layer,
        "layers": found.num_layers,
        "state": found.state,
        "units": size,
        "activations_int8": found.quantized(),
        "activations": {str(u): [round(float(v), 4) for v in found.values[:, u]] for u in units},
        "features": xray.feature_units(found, top),
    }


# -------------------------------------------------------------------------------------------------
# generation


@dataclass
class Generation:
    served: Served
    body: GenerateRequest
    prime_ids: list[int]
    form: PoemForm | None
    sampling: SamplingConfig
    gate: FairGate
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set when the client has gone: the generation stops at its next burst."""


def prepare_generation(served: Served, body: GenerateRequest, gate: FairGate) -> Generation:
    vocab = served.vocab
    form = None
    if body.acrostic or body.line_chars or body.lines:
        form = PoemForm(
            vocab, line_chars=body.line_chars or 5, lines=body.lines or None, acrostic=body.acrostic
        )
    prime_ids = vocab.encode(body.prime).tolist()
    if not prime_ids:  # start from a line break when the model knows one, else from its first token
        newline = vocab.id_of("\n")
        prime_ids = [newline if newline is not None else 0]
    try:
        sampling = SamplingConfig(temperature=body.temperature, top_k=body.top_k, top_p=body.top_p)
    except UsageError as exc:  # a value out of range, like the field checks': 422
        raise HTTPException(422, str(exc).removeprefix("--")) from None
    return Generation(served, body, prime_ids, form, sampling, gate)


BURST = 16
"""Model steps a request takes in a row before a waiting request gets its worker slot."""


def tokens_of(job: Generation) -> Iterator[dict]:
    """One dict per generated token: its text (possibly empty mid-character), and its candidates.

    The model runs while holding a worker slot of ``job.gate``, ``BURST`` steps at a time, so a long
    generation and short ones share the slots fairly (none waits for another to finish) while the
    switching between them stays rare. The slot is never held while the caller has the token."""
    served, body = job.served, job.body
    vocab = served.vocab
    banned = [vocab.unk_id] if vocab.unk_id is not None else []
    seen: list[torch.Tensor] = []
    observe = seen.append if body.candidates else None
    decode = vocab.decoder()
    stream = sample(
        served.model, job.prime_ids, body.length, job.sampling, seed=body.seed, form=job.form, banned=banned,
        observe=observe,
    )  # fmt: skip
    text, done = "", False
    while not done:
        burst: list[tuple[int, torch.Tensor | None]] = []
        if not job.gate.acquire(job.cancel):
            return
        try:
            for _ in range(BURST):
                token = None if job.cancel.is_set() else next(stream, None)
                if token is None:
                    done = True
                    break
                burst.append((int(token[0]), seen.pop()[0] if observe is not None else None))
        finally:
            job.gate.release()
        for token_id, logits in burst:
            piece = decode(token_id)
            event: dict = {"text": piece, "token": xray.token_label(vocab, token_id)}
            if logits is not None:
                event["p"] = round(float(torch.softmax(logits.float(), -1)[token_id]), 5)
                event["candidates"] = xray.top_candidates(vocab, logits, body.candidates)
            text += piece
            yield event
            if body.stop and text.endswith(body.stop):
                return
    tail = decode.flush()
    if tail:
        yield {"text": tail, "token": ""}


def collect(job: Generation) -> dict:
    started = time.perf_counter()
    events = list(tokens_of(job))
    seconds = time.perf_counter() - started
    out = {
        "model": job.served.name,
        "prime": job.body.prime,
        "text": "".join(e["text"] for e in events),
        "tokens": len(events),
        "seconds": round(seconds, 4),
    }
    if job.body.candidates:
        out["steps"] = events
    return out


def sse(job: Generation) -> Iterator[str]:
    """Server-Sent Events: ``token`` events, then one ``done`` event with the whole text."""
    started = time.perf_counter()
    parts = []
    try:
        for event in tokens_of(job):
            parts.append(event["text"])
            yield f"event: token\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"
    except RnnkitError as exc:  # the request was checked before the stream began; this is a safety net
        yield f"event: error\ndata: {json.dumps({'error': str(exc)})}\n\n"
        return
    except Exception:  # the answer has begun (200): the failure can only travel as an event
        log.exception("generate stream of %s failed", job.served.name)
        message = "internal error: the generation failed (details in the server's log)"
        yield f"event: error\ndata: {json.dumps({'error': message})}\n\n"
        return
    done = {
        "model": job.served.name,
        "text": "".join(parts),
        "tokens": len(parts),
        "seconds": round(time.perf_counter() - started, 4),
    }
    yield f"event: done\ndata: {json.dumps(done, ensure_ascii=False)}\n\n"
