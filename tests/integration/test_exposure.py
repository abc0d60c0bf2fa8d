"""What the public API port shows a stranger: no metrics, no interactive docs unless asked
for, and a health answer that names the failing dependency but none of its details."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from fastapi.testclient import TestClient

from remarket_mailer.bootstrap import App, build_app, make_broker
from remarket_mailer.db.migrate import upgrade
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import free_port, make_settings


@pytest.fixture
def build(tmp_path: Path) -> Iterator[Any]:
    apps: list[App] = []

    def factory(**overrides: Any) -> TestClient:
        if "database_url" not in overrides:
            overrides["database_url"] = f"sqlite:///{tmp_path / 'api.db'}"
            upgrade(overrides["database_url"])
        broker = make_broker(overrides["broker_url"]) if "broker_url" in overrides else None
        app = build_app(
            make_settings(**overrides), provider=MemoryProvider(), broker=broker or StubBroker()
        )
        apps.append(app)
        return TestClient(create_api(app))

    yield factory
    for app in apps:
        app.close()


def test_metrics_are_not_served_on_the_public_port(build: Any) -> None:
    client = build()
    response = client.get("/metrics")
    assert response.status_code == 404
    assert "remarket_events_total" not in response.text


def test_interactive_docs_are_off_unless_enabled(build: Any) -> None:
    client = build()
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path
    # The schema stays: shop integrators generate clients from it; it holds no secret.
    assert client.get("/openapi.json").status_code == 200


def test_interactive_docs_when_enabled(build: Any) -> None:
    client = build(api_docs=True)
    for path in ("/docs", "/redoc"):
        response = client.get(path)
        assert response.status_code == 200 and "/openapi.json" in response.text, path


def test_health_names_the_failing_dependencies_but_not_their_details(
    build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    db_port, redis_port = free_port(), free_port()  # nothing listens there
    client = build(
        database_url=f"postgresql://remarket_ops@127.0.0.1:{db_port}/remarket_live",
        broker_url=f"redis://127.0.0.1:{redis_port}/3",
    )
    with caplog.at_level(logging.WARNING, logger="remarket_mailer.entrypoints.api"):
        response = client.get("/v1/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failing": ["database", "broker"]}
    for detail in ("127.0.0.1", str(db_port), str(redis_port), "remarket_ops", "remarket_live"):
        assert detail not in response.text
    # The operator still learns why, from the log.
    logged = caplog.text
    assert "dependency=database" in logged and str(db_port) in logged
    assert "dependency=broker" in logged and str(redis_port) in logged


def test_health_when_all_is_well(build: Any) -> None:
    response = build().get("/v1/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"
