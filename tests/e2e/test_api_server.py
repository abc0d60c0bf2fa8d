"""``remarket api`` as deployed: a real uvicorn with two worker processes on a free port."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import ROOT, T0, free_port
from tests.e2e.test_cli import REMARKET
from tests.helpers import AUTH, cart_event


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
