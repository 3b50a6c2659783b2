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

import logging
import math
import threading
from collections.abc import Callable

import anyio
from fastapi import FastAPI, Request
from fastapi.concurrency import iterate_in_threadpool, run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from rnnkit import xray
from rnnkit.errors import CheckpointError, RnnkitError, TrainingError, UsageError
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
    MAX_INSPECT,
    MAX_LENGTH,
    MAX_TEXT,
    STATIC,
    GenerateRequest,
    InspectRequest,
    ScoreRequest,
    ServeConfig,
    Served,
    load_models,
    parse_run,
)

log = logging.getLogger("rnnkit.serve")


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
