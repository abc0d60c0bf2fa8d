"""A batch whose emails are all skipped is still counted and logged, with the reasons, and
``contacts show`` tells the story (the first-hour trap: no consent, nothing said)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from remarket_mailer import metrics
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.services.timeline import contact_timeline
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event, post, profile_event, run_due


def _skips(reason: str) -> float:
    return metrics.SKIPS.labels(reason)._value.get()


def test_an_all_skipped_batch_is_counted_logged_and_shown(
    make_app: AppFactory, clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))  # no consent.changed: the default rule is opt-in
    clock.set(T0 + timedelta(hours=1))
    before = _skips("no_consent")
    with caplog.at_level(logging.INFO, logger="remarket_mailer.services.sending"):
        run_due(app)
    assert _skips("no_consent") == before + 1
    assert any("not_sent: no_consent=1" in r.getMessage() for r in caplog.records)

    timeline = contact_timeline(app.uow, "ann@example.org")
    assert timeline is not None
    skipped = [e for e in timeline.entries if e.what == "skipped abandoned_cart/reminder_1"]
    assert len(skipped) == 1
    assert skipped[0].detail.startswith("no consent for this kind of email")
    kinds = [e.kind for e in timeline.entries]
    assert kinds.index("event") < kinds.index("enrollment") < kinds.index("delivery")
    assert [e.at for e in timeline.entries] == sorted(e.at for e in timeline.entries)
