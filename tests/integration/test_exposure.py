"""What the public API port shows a stranger: no metrics, no interactive docs unless asked
for, and a health answer that names the failing dependency but none of its details."""

from __future__ import annotations

import logging
import re
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
    with caplog.at_level(logging.WARNING, logger="remarket_mailer.entrypoints.health_api"):
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


def test_the_docs_pages_load_nothing_from_another_origin(build: Any) -> None:
    """Offline installs got a blank page: the scripts came from a CDN. Every script, style
    and icon the pages name is now served by the API itself."""
    client = build(api_docs=True)
    for path in ("/docs", "/redoc"):
        html = client.get(path).text
        assert "//" not in html.replace("http://testserver", ""), html  # no absolute URL
        assets = re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+)['"]""", html)
        assets = [a for a in assets if a != "/openapi.json"]
        assert any(a.endswith(".js") for a in assets), (path, assets)
        for asset in assets:
            answer = client.get(asset)
            assert answer.status_code == 200 and len(answer.content) > 1000, (path, asset)


def test_the_docs_assets_are_not_served_when_the_docs_are_off(build: Any) -> None:
    client = build()
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 404


def test_openapi_declares_the_bearer_keys_where_they_are_checked(build: Any) -> None:
    """Swagger UI shows "Authorize" for a securitySchemes entry and sends the key with each
    operation that references it."""
    client = build(api_docs=True)
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert {name: (s["type"], s["scheme"]) for name, s in schemes.items()} == {
        "apiKey": ("http", "bearer"),
        "adminKey": ("http", "bearer"),
    }
    secured = {
        (path, method): [name for requirement in op["security"] for name in requirement]
        for path, operations in schema["paths"].items()
        for method, op in operations.items()
        if "security" in op
    }
    assert secured == {
        ("/v1/events", "post"): ["apiKey"],
        ("/v1/events/batch", "post"): ["apiKey"],
        ("/v1/discounts/validate", "post"): ["apiKey"],
        ("/v1/discounts/redeem", "post"): ["apiKey"],
        ("/v1/contacts/export", "post"): ["adminKey"],
        ("/v1/contacts/erase", "post"): ["adminKey"],
    }
    # The declarations say what the routes do: no key, 401; the key, past the check.
    keys = {"apiKey": "test-key", "adminKey": "admin-key"}
    client = build(api_docs=True, admin_api_keys=["admin-key"])
    for (path, _method), (name,) in secured.items():
        assert client.post(path, json={}).status_code == 401, path
        with_key = client.post(path, json={}, headers={"Authorization": f"Bearer {keys[name]}"})
        assert with_key.status_code == 422, (path, with_key.text)
    health = schema["paths"]["/v1/health"]["get"]
    assert "security" not in health
