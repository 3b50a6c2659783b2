"""Running the app under uvicorn: the listening socket, the connection limits, and a header timeout.

:func:`serve` binds the socket itself, so a busy port is a one-line usage error (uvicorn would log and
exit with its own code), warns when the address is not a loopback one, and runs uvicorn with limits on
what a client may hold: the request head must arrive within ``header_timeout`` seconds (uvicorn has no
such timer: a client that sends half a request line and stalls would keep its connection forever),
a head is at most ``max_header`` bytes, an idle keep-alive connection closes after ``keep_alive``
seconds, and past ``max_connections`` open connections new requests get 503.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import json
import logging
import socket

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from rnnkit.errors import UsageError
from rnnkit.serve.guards import LOOPBACK_NAMES

log = logging.getLogger("rnnkit.serve")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is reachable from this machine only."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may well resolve to a public address


def exposure_warning(host: str, port: int, hosts: list[str]) -> str | None:
    """What to tell the operator when ``host`` is not a loopback address (``None`` when it is)."""
    if is_loopback(host):
        return None
    if "*" in hosts:
        answered = "requests are answered whatever their Host header names (--allow-host '*')"
    else:
        names = ", ".join([*LOOPBACK_NAMES, *hosts])
        answered = f"requests are answered only when their Host header is one of: {names} (--allow-host adds)"
    return (
        f"listening on {host}:{port}, which is not a loopback address: anyone who can reach this machine "
        f"on port {port} can use the API and the playground (generate, score and inspect with the served "
        f"models, using its CPU or GPU); there is no authentication and no TLS; {answered}"
    )


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening); a port in use is a :class:`UsageError`."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"--host: cannot resolve {host!r} ({exc.strerror})") from None
    family, kind, proto, _, address = found[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait for TIME_WAIT
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} is in use (another server?): stop it, or choose another with --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise UsageError(
                f"port {port} on {host}: permission denied; choose one above 1023 with --port"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"--host {host}: not an address of this machine") from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on the request head.

    The timer starts when a connection opens, and again when the first bytes of a keep-alive
    connection's next request arrive; it stops once the whole head is in. When it fires the connection
    is closed (with a 408 if part of a request had come). It is a deadline, not an idle timer, so a
    client dripping one byte at a time cannot stretch it."""

    def __init__(self, *args, header_timeout: float = 10.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_head():
            if self._head_timer is None:  # the keep-alive timer was just stopped by these bytes
                self._start_head_timer()
        else:
            self._stop_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot parse (malformed, or a head over the size limit): a JSON 400, then close."""
        body = json.dumps({"error": "invalid HTTP request (malformed, or its head is too long)"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def _waiting_for_head(self) -> bool:
        return self.conn.their_state is h11.IDLE and not self.transport.is_closing()

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._waiting_for_head():
            return
        if self.conn.trailing_data[0]:  # part of a request came: say why it is being dropped
            body = json.dumps({"error": f"the request head did not arrive within {self.header_timeout:g} s"})
            head = (
                "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head.encode() + body.encode())
        self.transport.close()


def uvicorn_config(app, config):
    """uvicorn's settings for ``app`` under the limits of ``config`` (a :class:`ServeConfig`)."""
    import uvicorn

    protocol = functools.partial(GuardedH11Protocol, header_timeout=config.header_timeout)
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        http=protocol,
        log_level="warning",
        timeout_keep_alive=config.keep_alive,
        h11_max_incomplete_event_size=config.max_header,
        limit_concurrency=config.max_connections,
        server_header=False,
    )


def serve(app, config) -> None:
    """Serve ``app`` on ``config.host:config.port`` until interrupted."""
    import uvicorn

    sock = bind(config.host, config.port)
    warning = exposure_warning(config.host, config.port, config.trusted_hosts())
    if warning:
        log.warning(warning)
    where = f"[{config.host}]" if ":" in config.host else config.host
    names = ", ".join(getattr(app.state, "models", {})) or "the app"
    log.info("serving %s on http://%s:%d/ (playground), /docs (API)", names, where, config.port)
    try:
        uvicorn.Server(uvicorn_config(app, config)).run(sockets=[sock])
    finally:
        sock.close()
