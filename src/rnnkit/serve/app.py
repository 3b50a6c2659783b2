"""The HTTP API and the playground: ``create_app(ServeConfig(runs=[...]))`` gives a FastAPI app.

Models of any task are loaded once, when the app is made, from the run folders the operator names
(:func:`rnnkit.tasks.load_run`); a request chooses one by name and can never name a path. Every model
call runs in a worker thread (``run_in_threadpool``, or Starlette's thread iteration of a streamed
response), so the event loop keeps answering while a long request works; the endpoints call the methods
``rnnkit.load(run)`` gives, so an answer is what Python gets for the same input.

Endpoints (JSON unless said; errors are ``{"error": "one line"}`` with a 4xx status):

- ``GET /healthz``, ``GET /v1/models`` (each model's name and task; ``default``: the language model
  the char-RNN endpoints use when a request names none, null when none is served)
- ``POST /v1/generate``: text from a prime; ``"stream": true`` sends Server-Sent Events, one ``token``
  event per generated token and a final ``done`` event
- ``POST /v1/score``: nats per token of a text, each token's probability and the top candidates, and
  under ``score`` what ``rnnkit.load(run).score(text)`` gives (nats, bits and perplexity per character)
- ``POST /v1/inspect``: one layer's activations after every token (int8, base64) and the units most
  correlated with simple features of the text
- ``POST /v1/classify``, ``POST /v1/tag``: labels, or tags with words or entities, for up to 64 texts
  in one batch
- ``POST /v1/forecast``: the next values after a series (or the run's own), with the naive baselines
- ``POST /v1/transcribe`` (the body: a WAV file), ``POST /v1/caption`` (the body: a PNG or JPEG):
  checked in memory, the file's header first (:mod:`rnnkit.serve.uploads`), against the limits of
  :class:`ServeConfig` (bytes, seconds, pixels)
- ``GET /``: the playground (static HTML and JavaScript, no build step); ``/docs``: OpenAPI

Every failure is JSON, an unexpected one too (a 500 whose body holds no traceback); on a stream it is an
``error`` event, after which the stream ends. The guards of :mod:`rnnkit.serve.guards` (body bytes
counted as they arrive, trusted ``Host`` names, security headers) wrap the app, and a generation whose
client has gone stops within ``BURST`` steps.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import iterate_in_threadpool, run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from rnnkit import xray
from rnnkit.errors import CheckpointError, DataError, RnnkitError, TrainingError, UsageError
from rnnkit.serve.generation import (  # noqa: F401  (FairGate and inspection: also imported from here)
    FairGate,
    Generation,
    collect,
    inspection,
    prepare_generation,
    sse,
    tokens_of,
)
from rnnkit.serve.guards import BodyLimit, CatchAll, SecurityHeaders, TrustedHosts
from rnnkit.serve.models import (  # noqa: F401  (ServeConfig, STATIC and the limits: also imported from here)
    AUDIO_TYPES,
    IMAGE_TYPES,
    MAX_INSPECT,
    MAX_LENGTH,
    MAX_TEXT,
    MAX_TEXTS,
    STATIC,
    UPLOAD_PATHS,
    CaptionQuery,
    ClassifyRequest,
    ForecastRequest,
    GenerateRequest,
    InspectRequest,
    ScoreRequest,
    ServeConfig,
    Served,
    TagRequest,
    TranscribeQuery,
    load_models,
    parse_run,
)
from rnnkit.serve.uploads import audio_seconds, check_type, image_size, one_line, upload_body

log = logging.getLogger("rnnkit.serve")


TASK_WORDS = {
    "lm": "language model",
    "classify": "classifier",
    "tag": "tagger",
    "forecast": "forecaster",
    "speech": "speech recogniser",
    "caption": "captioner",
}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def with_article(task: str) -> str:
    """The word for a model of ``task``, with its article: 'a classifier', 'an ...'."""
    word = TASK_WORDS.get(task, f"{task} model")
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def create_app(config: ServeConfig) -> FastAPI:
    """The app, with every model of ``config.runs`` loaded (a bad run folder raises here, not later)."""
    models = load_models(config)
    # what /v1/generate, /v1/score and /v1/inspect use when a request names no model (pick below)
    default = next((m.name for m in models.values() if m.task == "lm"), None)
    gate = FairGate(max(1, config.workers))

    def gated(fn, *args):
        with gate:
            return fn(*args)

    async def run_model(fn: Callable, *args, broken: int = 422) -> Any:
        """``fn(*args)`` in a worker thread, in its turn at the gate; what the task refuses as data (a
        corrupt file, a series too short) is the request's fault: ``broken`` (422)."""
        try:
            return await run_in_threadpool(gated, fn, *args)
        except DataError as exc:
            raise HTTPException(broken, one_line(exc)) from None

    app = FastAPI(
        title=config.title,
        summary="Trained RNN models of every rnnkit task: generate, score, inspect, classify, tag, "
        "forecast, transcribe, caption.",
        version="1",
        docs_url=None,  # served below from the swagger-ui-bundle package: no CDN, works offline
        redoc_url=None,
    )
    app.state.models = models
    limits = {
        "texts": MAX_TEXTS,
        "text_chars": MAX_TEXT,
        "body_bytes": config.max_body,
        "upload_bytes": config.max_upload,
        "audio_seconds": config.max_audio_seconds,
        "pixels": config.max_pixels,
    }

    def listing() -> str:
        return ", ".join(f"{m.name} ({m.task})" for m in models.values())

    def pick(name: str | None, task: str = "lm") -> Served:
        """The model a request names (404 when none has that name, 400 when it does another task), or,
        when it names none, the only one of ``task`` (a language model: the first one)."""
        if name is not None:
            served = models.get(name)
            if served is None:
                raise HTTPException(404, f"no model named {name!r} (served: {listing()})")
            if served.task != task:
                wrong = f"model {name!r} is {with_article(served.task)}, not {with_article(task)}"
                raise HTTPException(400, f"{wrong} (served: {listing()})")
            return served
        candidates = [m for m in models.values() if m.task == task]
        if not candidates:
            raise HTTPException(400, f"no {TASK_WORDS.get(task, task)} is served here (served: {listing()})")
        if len(candidates) > 1 and task != "lm":
            names = ", ".join(m.name for m in candidates)
            raise HTTPException(422, f"model: {len(candidates)} {task} models are served ({names}): name one")
        return candidates[0]

    # added innermost first: a request meets SecurityHeaders, TrustedHosts, CatchAll, then BodyLimit
    uploads = dict.fromkeys(UPLOAD_PATHS, config.max_upload)
    app.add_middleware(BodyLimit, limit=config.max_body, timeout=config.body_timeout, paths=uploads)
    app.add_middleware(CatchAll)
    app.add_middleware(TrustedHosts, hosts=config.trusted_hosts())
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return error(422, f"body: not valid JSON ({first.get('ctx', {}).get('error', 'cannot parse')})")
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query")) or "body"
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
        return error(503 if server_side else 400, one_line(exc))

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "models": len(models)}

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"models": [m.info for m in models.values()], "default": default, "limits": limits}

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
        """Each token's probability (one pass over the text) and, under ``score``, what
        ``rnnkit.load(run).score(text)`` gives: the figures ``rnnkit eval`` reports for a file."""
        served = pick(body.model)

        def work() -> tuple[xray.Scores, dict]:
            found = xray.token_scores(served.model, served.text_vocab, body.text, body.top)
            if len(found.tokens) < 2:
                raise UsageError("text: needs at least two tokens to score")
            return found, served.loaded.score(body.text)

        found, figures = await run_in_threadpool(gated, work)
        count = len(found.tokens) - 1
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
            "score": figures,
        }

    @app.post("/v1/inspect")
    async def inspect(body: InspectRequest):
        served = pick(body.model)

        def work() -> dict:
            found = xray.activations(served.model, served.text_vocab, body.text, body.layer, body.state)
            return inspection(served.name, found, body.top, body.units)

        return await run_in_threadpool(gated, work)

    @app.post("/v1/classify")
    async def classify(body: ClassifyRequest):
        """The label of each text and every label's probability, all texts in one batch."""
        served = pick(body.model, "classify")
        return {"model": served.name, "results": await run_model(served.loaded.classify, list(body.texts))}

    @app.post("/v1/tag")
    async def tag(body: TagRequest):
        """Each text's tokens and their tags, with the words (segmentation) or the entities, in one batch."""
        served = pick(body.model, "tag")
        return {"model": served.name, "results": await run_model(served.loaded.tag_texts, list(body.texts))}

    @app.post("/v1/forecast")
    async def forecast(body: ForecastRequest):
        """The next values after ``series`` (null: the end of the run's own series) and the naive
        baselines beside them."""
        served = pick(body.model, "forecast")
        series = list(body.series) if body.series is not None else None
        # the run's own series unreadable on the server is not the request's fault
        found = await run_model(served.loaded.forecast, series, broken=422 if series is not None else 503)
        return {"model": served.name, **found}

    @app.post("/v1/transcribe", openapi_extra=upload_body(AUDIO_TYPES, "WAV file"))
    async def transcribe(request: Request, query: Annotated[TranscribeQuery, Query()]):
        """The transcript of one WAV recording (the body), and the attention that spelled it if asked."""
        check_type(request.headers.get("content-type"), AUDIO_TYPES)
        served = pick(query.model, "speech")
        if query.attention and query.beam != 1:
            raise HTTPException(422, "attention: comes with greedy decoding only (beam=1)")
        data = await request.body()
        audio_seconds(data, config.max_audio_seconds)
        if query.attention:
            found = await run_model(served.loaded.attend, data)
            return {"model": served.name, "text": found["text"], "attention": found["attention"]}
        texts = await run_model(served.loaded.transcribe, [data], query.beam)
        return {"model": served.name, "text": texts[0]}

    @app.post("/v1/caption", openapi_extra=upload_body(IMAGE_TYPES, "PNG or JPEG picture"))
    async def caption(request: Request, query: Annotated[CaptionQuery, Query()]):
        """A caption of one PNG or JPEG picture (the body)."""
        check_type(request.headers.get("content-type"), IMAGE_TYPES)
        served = pick(query.model, "caption")
        data = await request.body()
        image_size(data, config.max_pixels)
        captions = await run_model(served.loaded.caption, [data], query.beam)
        return {"model": served.name, "caption": captions[0]}

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
