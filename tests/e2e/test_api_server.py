"""``remarket api`` as deployed: a real uvicorn with two worker processes on a free port."""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import ROOT, T0, free_port
from tests.e2e.test_cli import REMARKET
from tests.helpers import AUTH, cart_event

HEADER_TIMEOUT = 2.0


@dataclass
class Server:
    port: int
    metrics_port: int
    process: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("api")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REMARKET_")},
        "REMARKET_DATABASE_URL": f"sqlite:///{tmp / 'api.db'}",
        "REMARKET_BROKER_URL": "stub://",
        "REMARKET_API_KEYS": "test-key",
        "REMARKET_SECRET_KEY": "test-secret-key-0123456789-0123456789",
        "REMARKET_WORKFLOWS_DIR": str(ROOT / "workflows"),
        "REMARKET_TEMPLATES_DIR": str(ROOT / "templates"),
    }
    port, metrics_port = free_port(), free_port()
    env["REMARKET_METRICS_PORT"] = str(metrics_port)
    env["REMARKET_API_HEADER_TIMEOUT_SECONDS"] = str(HEADER_TIMEOUT)
    upgrade = subprocess.run(
        [*REMARKET, "db", "upgrade"], cwd=tmp, env=env, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    process = subprocess.Popen(
        [*REMARKET, "api", "--port", str(port), "--workers", "2"],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Server(port, metrics_port, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{running.url}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        process.wait(30)


def test_metrics_are_on_their_own_port_summed_over_the_workers(server: Server) -> None:
    events = [cart_event(T0, event_id=f"e2e-metrics-{n}") for n in range(6)]
    with httpx.Client(base_url=server.url, headers=AUTH) as client:
        for event in events:
            # A new connection each: the two workers share them out.
            response = client.post("/v1/events", json=event, headers={"Connection": "close"})
            assert response.status_code == 202, response.text
        assert client.get("/metrics").status_code == 404
    scraped = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    line = 'remarket_events_total{outcome="accepted",type="cart.updated"}'
    values = [float(row.split()[-1]) for row in scraped.splitlines() if row.startswith(line)]
    assert values == [len(events)], scraped


def closed_within(sockets: list[socket.socket], seconds: float) -> list[float]:
    """Wait until the server has closed every socket; the seconds each one took."""
    begin = time.monotonic()
    closed: dict[socket.socket, float] = {}
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        while len(closed) < len(sockets) and time.monotonic() - begin < seconds:
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(4096)
                except ConnectionResetError:
                    data = b""
                assert data == b"", f"the server answered a half-sent request: {data!r}"
                closed[sock] = time.monotonic() - begin
                selector.unregister(sock)
    assert len(closed) == len(sockets), f"{len(sockets) - len(closed)} still held after {seconds}s"
    return [closed[sock] for sock in sockets]


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def test_half_sent_requests_are_closed_within_the_header_timeout(server: Server) -> None:
    sockets = [connect(server) for _ in range(100)]
    try:
        for n, sock in enumerate(sockets):
            if n % 4:  # and a quarter of them send nothing at all
                sock.sendall(b"GET /v1/hea")
        # Meanwhile the server still answers everyone else.
        assert httpx.get(f"{server.url}/v1/health", timeout=5).status_code == 200
        took = closed_within(sockets, HEADER_TIMEOUT + 3)
        assert min(took) > HEADER_TIMEOUT / 2  # the deadline closed them, not an error
    finally:
        for sock in sockets:
            sock.close()
    assert httpx.get(f"{server.url}/v1/health", timeout=5).status_code == 200


def test_a_client_dripping_header_bytes_is_closed_too(server: Server) -> None:
    """Every byte cancelled uvicorn's only timer; the deadline counts from the first byte."""
    request = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100
    with connect(server) as sock:
        begin = time.monotonic()
        sock.settimeout(0.3)
        closed = False
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        assert closed, "the server kept a connection that never finished its headers"
        assert time.monotonic() - begin < HEADER_TIMEOUT + 3


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response from ``sock`` (a body without Content-Length ends at close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    if lengths:
        while len(body) < lengths[0]:
            body += sock.recv(65536)
    else:
        while chunk := sock.recv(65536):
            body += chunk
    return head + b"\r\n\r\n" + body


def test_the_deadline_applies_to_each_request_on_a_kept_alive_connection(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_response(sock)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost:")  # the next one, half sent
        closed_within([sock], HEADER_TIMEOUT + 3)


def test_complete_requests_are_not_cut_off(server: Server) -> None:
    with connect(server) as sock:
        # Two requests on one connection, each well within the deadline.
        for _ in range(2):
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(HEADER_TIMEOUT / 2)


def test_headers_over_16_kb_are_refused(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000)
        assert read_response(sock).startswith(b"HTTP/1.1 400")
