"""Bodies over a real socket (uvicorn, as in production): a chunked body with no end is cut
off at the cap with a 413 before it is all sent, and a body that trickles in gets a 408."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from remarket_mailer.entrypoints import http
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import AppFactory, free_port


@pytest.fixture
def server(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(http, "BODY_READ_SECONDS", 1.0)
    port = free_port()
    config = uvicorn.Config(
        create_api(make_app()), host="127.0.0.1", port=port, log_level="warning"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield port
    finally:
        running.should_exit = True
        thread.join(10)


def request_head(path: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer test-key\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_endless_chunked_body_is_refused_at_the_cap(server: int) -> None:
    sent = 0
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(request_head("/v1/events", "Transfer-Encoding: chunked\r\n"))
        chunk = b"x" * 65_536
        status = None
        try:
            while sent < 50_000_000:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                sock.setblocking(False)
                try:
                    if sock.recv(1, socket.MSG_PEEK):
                        break
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status = read_status(sock)
    assert status == 413
    # Refused near the 1 MB cap, not after reading everything the client cared to send.
    assert sent < 8 * http.MAX_BODY_BYTES


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_body_that_trickles_in_gets_a_408(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(request_head("/v1/events", "Content-Length: 1000\r\n") + b'{"event_id":')
        started = time.monotonic()
        status = read_status(sock)
        waited = time.monotonic() - started
    assert status == 408
    assert waited < 9  # the socket timeout would have raised first
