"""The server's guards: plain ASGI middleware that stands between the network and the API.

From the outside in (``create_app`` adds them in this order):

- :class:`SecurityHeaders`: every answer says ``nosniff``, may not be framed, sends no referrer, and
  carries a Content-Security-Policy that lets the playground load only its own scripts and styles;
- :class:`TrustedHosts`: a request whose ``Host`` is not one of the served names gets a JSON 400, so a
  page on another site cannot reach the loopback API through DNS rebinding;
- :class:`CatchAll`: an exception nobody handled becomes a JSON 500 (the traceback goes to the log,
  never to the client);
- :class:`BodyLimit`: the bytes of a body are counted as they arrive, whatever its headers claim, and
  the request is answered 413 (and the connection closed) as soon as they pass the limit; a body that
  does not arrive in time gets 408.

Every refusal is ``{"error": "one line"}``, like the API's own errors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping

import anyio
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

log = logging.getLogger("rnnkit.serve")

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
CLOSE = {"connection": "close"}
"""Sent with a refusal made before the body was read: the server will not read the rest of it."""


def refusal(status: int, message: str, *, close: bool = False) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=CLOSE if close else None)


# -------------------------------------------------------------------------------------------------
# headers


PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""The playground: its own scripts and stylesheet, fetches to its own origin, nothing inline (it sets
styles through the DOM only, which a policy does not restrict), never inside a frame. No inline script
can run, so injected markup cannot run code. ``'unsafe-eval'`` is there for browser automation
(Playwright's ``wait_for_function`` evaluates strings in the page, as tests/test_playground.py does);
the playground itself never evaluates a string."""
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
"""The /docs page: FastAPI's page with its one inline script, and Swagger UI from the swagger-ui-bundle
package under /docs/assets (nothing from another origin, so it works offline)."""
DOCS_PATHS = ("/docs",)


class _HttpMiddleware:
    """An ASGI middleware that acts on HTTP requests (:meth:`http`) and passes anything else through."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope, receive, send) -> None:
        raise NotImplementedError


class SecurityHeaders(_HttpMiddleware):
    """Adds the standard protective headers to every HTTP answer (an answer that set one keeps its own)."""

    async def http(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        docs = any(path == p or path.startswith(p + "/") for p in DOCS_PATHS)
        extra = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", (DOCS_POLICY if docs else PAGE_POLICY).encode()),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -------------------------------------------------------------------------------------------------
# hosts


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
"""The names a browser on this machine reaches a loopback server by; always trusted."""


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port, brackets or a final dot, in lower case."""
    value = header.strip().lower()
    if value.startswith("["):  # an IPv6 literal: [::1]:8000
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:  # name:port (a bare IPv6 address has more than one colon)
        value = value.partition(":")[0]
    return value.rstrip(".")


class TrustedHosts:
    """Answers only requests whose ``Host`` header names this server (any port): the loopback names and
    ``hosts``; ``"*"`` among them turns the check off."""

    def __init__(self, app, hosts: Iterable[str]) -> None:
        self.app = app
        names = {host_name(h) for h in (*LOOPBACK_NAMES, *hosts)}
        self.anything = "*" in names
        self.names = frozenset(names)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket") and not self.anything:
            given = Headers(scope=scope).get("host", "")
            if host_name(given) not in self.names:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                shown = given[:100] if given else "(none)"
                message = f"host {shown!r} is not served here (rnnkit serve --allow-host NAME adds one)"
                await refusal(400, message, close=True)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -------------------------------------------------------------------------------------------------
# failures


class CatchAll(_HttpMiddleware):
    """An exception that reached this far becomes a JSON 500 without the traceback (which is logged).
    When the answer had already begun (a stream), the connection is left for the server to close."""

    async def http(self, scope, receive, send) -> None:
        started = False

        async def send_tracked(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if not started:
                message = "internal error: the server could not answer this request (details in its log)"
                await refusal(500, message)(scope, receive, send)


# -------------------------------------------------------------------------------------------------
# bodies


class Refused(Exception):
    """Raised into the app by :class:`BodyLimit`'s ``receive`` once it has answered the request itself."""


class BodyLimit(_HttpMiddleware):
    """Counts the body bytes a request actually delivers, and refuses it as soon as they pass ``limit``.

    The headers are only a first check: a declared ``Content-Length`` over the limit is refused before
    any body is read, and a POST must declare one (411). But a request can say ``Content-Length: 20``
    and send a chunked body of any size (``Transfer-Encoding`` wins), so the limit is enforced on the
    bytes that come in: past ``limit`` the request gets 413 at once, the connection is closed and the
    rest is never read. A body that differs from its declared length gets 400; one that takes longer
    than ``timeout`` seconds to arrive gets 408. An answer given before the whole body was read closes
    the connection, so the server never reads a body nobody wants (a GET with a body, say).

    ``paths`` gives some paths a limit of their own (the upload endpoints take files larger than any
    JSON body), counted the same way.
    """

    def __init__(
        self, app, limit: int, timeout: float = math.inf, paths: Mapping[str, int] | None = None
    ) -> None:
        super().__init__(app)
        self.default_limit, self.timeout = limit, timeout
        self.paths = dict(paths or {})

    async def http(self, scope, receive, send) -> None:
        limit = self.paths.get(scope.get("path", ""), self.default_limit)
        await self.counted(limit, scope, receive, send)

    async def counted(self, limit: int, scope, receive, send) -> None:
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        chunked = "transfer-encoding" in headers
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await refusal(413, f"request body over {limit:,} bytes", close=True)(scope, receive, send)
            return
        if declared is None and scope["method"] in BODY_METHODS:
            await refusal(411, "send a Content-Length header", close=True)(scope, receive, send)
            return
        expected = int(declared) if declared is not None else None
        received = 0
        finished = not chunked and not expected  # no body to read
        answered = started = False
        deadline = anyio.current_time() + self.timeout

        async def refuse(status: int, message: str) -> None:
            nonlocal answered
            if not started:
                await refusal(status, message, close=True)(scope, receive, send)
            answered = True
            raise Refused(message)

        async def counted_receive():
            nonlocal received, finished
            if answered:
                raise Refused("already answered")
            if finished:  # the body is in: what is left to hear about is a disconnect
                return await receive()
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())) as waited:
                message = await receive()
            if waited.cancelled_caught:
                await refuse(408, f"the request body did not arrive within {self.timeout:g} s")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                finished = not message.get("more_body", False)
                if received > limit:
                    await refuse(413, f"request body over {limit:,} bytes")
                if finished and expected is not None and received != expected:
                    await refuse(
                        400, f"the body has {received:,} bytes, its Content-Length says {expected:,}"
                    )
            return message

        async def guarded_send(message) -> None:
            nonlocal started
            if answered:
                return  # the request was refused here; whatever the app makes of that is not sent
            if message["type"] == "http.response.start":
                started = True
                if not finished or chunked:  # RFC 9112: close after a request with both length headers
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Refused:
            if not answered:
                raise
