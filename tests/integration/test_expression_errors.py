"""A workflow expression that fails at run time is that workflow's problem, not ingest's."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from remarket_mailer import metrics
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import ROOT, T0, AppFactory
from tests.helpers import AUTH, cart_event, consent_event, enrollments

DIVIDES = "cart.total / (cart['items'] | length) > 1"


@pytest.fixture
def workflows(tmp_path: Path) -> Path:
    """The stock abandoned-cart workflow, and a copy whose filter divides by the item count."""
    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    (tmp_path / "abandoned_cart.yaml").write_text(stock)
    divides = stock.replace("id: abandoned_cart", "id: per_item").replace(
        "filter: cart.total >= 20", f'filter: "{DIVIDES}"'
    )
    assert DIVIDES in divides
    (tmp_path / "per_item.yaml").write_text(divides)
    return tmp_path


def _failures() -> float:
    return metrics.EXPRESSION_ERRORS.labels("per_item", "trigger.filter")._value.get()


def test_a_filter_dividing_by_zero_is_not_matched_and_the_others_still_run(
    make_app: AppFactory, workflows: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(workflows_dir=workflows)
    client = TestClient(create_api(app))
    assert client.post("/v1/events", json=consent_event(T0), headers=AUTH).status_code < 300
    empty = cart_event(T0, cart_id="cart-empty")
    empty["items"] = []
    before = _failures()
    with caplog.at_level(logging.WARNING, logger="remarket_mailer.services.ingest"):
        response = client.post("/v1/events", json=empty, headers=AUTH)
    assert response.status_code in (200, 202), response.text
    assert sorted(e.workflow_id for e in enrollments(app)) == ["abandoned_cart"]
    assert _failures() == before + 1
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("per_item" in r.getMessage() and "DivisionByZero" in r.getMessage() for r in warned)


def test_the_same_in_a_batch(make_app: AppFactory, workflows: Path) -> None:
    app = make_app(workflows_dir=workflows)
    client = TestClient(create_api(app))
    empty = cart_event(T0, cart_id="cart-empty")
    empty["items"] = []
    full = cart_event(T0, cart_id="cart-full")
    batch = {"events": [consent_event(T0), empty, full]}
    response = client.post("/v1/events/batch", json=batch, headers=AUTH)
    assert response.status_code in (200, 202), response.text
    assert [r["status"] for r in response.json()["results"]] == ["accepted"] * 3
    started = sorted((e.workflow_id, e.key) for e in enrollments(app))
    assert started == [
        ("abandoned_cart", "cart-empty"),
        ("abandoned_cart", "cart-full"),
        ("per_item", "cart-full"),
    ]
