"""Run an ASGI app under uvicorn, one or several worker processes, with TCP_NODELAY.

uvicorn binds its own listening socket (for ``--workers``) with ``socket.socket(family)``,
so the socket says protocol 0, not IPPROTO_TCP. asyncio only turns Nagle's algorithm off on
sockets that say IPPROTO_TCP (``asyncio.base_events._set_nodelay``), so every response on
a kept-alive connection waited for the client's delayed ACK: 40 ms on Linux, measured here
on a no-op endpoint (0.4 ms with the fix). The socket is re-wrapped so that it tells the
truth; the workers and the connections they accept inherit it.

Slow clients: uvicorn has no deadline for a request's headers. Its keep-alive timer only
runs between requests and every byte received cancels it, so a client that sends half a
request line (or one byte every few seconds) held its connection for ever; a hundred of them
pinned a worker's connections. ``_HeaderDeadlineH11`` closes a connection whose request
headers are not complete within ``header_timeout`` of its first byte (or of the connection,
for the first request). h11 itself bounds how large unfinished headers may grow
(``MAX_HEADER_BYTES``: 400 and close), and ``max_concurrency`` makes a worker process answer
503 instead of queueing without end. Reading the body has its own deadline (``http.py``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

from remarket_mailer import metrics
from remarket_mailer.logs import LogFormat, uvicorn_log_config

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
"""Request line and headers of one request, at most (h11's incomplete-event limit)."""


@dataclass(frozen=True)
class ClientLimits:
    """What one client may hold of an API worker process."""

    header_timeout: float = 10.0
    """Seconds from a request's first byte (or the connection) to its last header line."""
    keep_alive_timeout: int = 5
    """Seconds an idle kept-alive connection stays open between requests."""
    max_concurrency: int | None = 1000
    """Connections or running requests per worker process past which requests get a 503."""


class _HeaderDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request headers come too slowly."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._header_timeout: float = getattr(config, "header_timeout", 10.0)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            # Part of a request line or headers: the clock runs from its first byte.
            if self._header_deadline is None:
                self._arm_header_deadline()
        else:
            self._disarm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(self._header_timeout, self._too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
            return
        metrics.HEADER_TIMEOUTS.inc()
        # Counted, not logged at INFO: a slow-loris attack would flood the log.
        log.debug("closed connection client=%s reason=slow_headers", self.client)
        self.transport.close()


class _Config(uvicorn.Config):
    def __init__(self, app: str, *, header_timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        # Read by _HeaderDeadlineH11 in each worker process (the config is pickled to them).
        self.header_timeout = header_timeout

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            # Without family/type/proto, Python reads all three back from the descriptor.
            sock = socket.socket(fileno=sock.detach())
            sock.set_inheritable(True)
        return sock


def serve(
    app: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    factory: bool = False,
    log_level: str = "info",
    access_log: bool = True,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    log_format: LogFormat = "text",
    limits: ClientLimits | None = None,
) -> None:
    """Serve ``app`` (an import string, "module:attribute") until interrupted, and its
    Prometheus metrics on ``metrics_host:metrics_port`` when a port is given. Every process
    logs in ``log_format``, uvicorn's access log included."""
    limits = limits or ClientLimits()
    config = _Config(
        app,
        host=host,
        port=port,
        workers=workers,
        factory=factory,
        log_level=log_level,
        log_config=uvicorn_log_config(log_format, log_level.upper()),
        access_log=access_log,
        http=_HeaderDeadlineH11,
        header_timeout=limits.header_timeout,
        timeout_keep_alive=limits.keep_alive_timeout,
        limit_concurrency=limits.max_concurrency,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    # Metrics first: a port in use is then one line, before uvicorn says it is running.
    directory = None
    if workers > 1 and metrics_port:
        # The workers are spawned after this: they inherit the metrics directory.
        directory = metrics.serve_for_workers(metrics_port, metrics_host)
    else:
        metrics.serve(metrics_port, metrics_host)
    try:
        sock = config.bind_socket()
        if workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        if directory is not None:
            directory.cleanup()
