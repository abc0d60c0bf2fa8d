"""ESP events as the providers define them, through ``/v1/webhooks/{provider}``: only what is
about the address suppresses it; sender-side failures are recorded for the operator."""

from __future__ import annotations

import json
from datetime import timedelta

from fastapi.testclient import TestClient

from remarket_mailer.bootstrap import App
from remarket_mailer.domain.clock import VirtualClock
from tests.integration.test_webhook_hostile_input import (
    hooks,
    mailgun_signature,
    now_ts,
    sendgrid_headers,
    suppressed,
    svix_headers,
    tracking_rows,
)

__all__ = ["hooks"]  # the fixture, imported for pytest


def test_sendgrid_sender_side_drop_suppresses_no_one(
    hooks: tuple[App, TestClient], clock: VirtualClock
) -> None:
    app, client = hooks
    at = int((clock.now() - timedelta(minutes=1)).timestamp())
    drops = [
        {"event": "dropped", "email": "ann@example.org", "timestamp": at, "sg_event_id": "d1",
         "reason": "Invalid SMTPAPI header"},
        {"event": "dropped", "email": "bob@example.org", "timestamp": at, "sg_event_id": "d2",
         "reason": "Spam Content (if spam checker app enabled)"},
    ]  # fmt: skip
    body = json.dumps(drops).encode()
    response = client.post(
        "/v1/webhooks/sendgrid", content=body, headers=sendgrid_headers(body, str(now_ts(clock)))
    )
    assert response.status_code == 200, response.text
    assert response.json()["suppressed"] == 0
    assert suppressed(app) == []
    assert [(r.kind, r.bounce_class) for r in tracking_rows(app)] == [
        ("bounced", "policy"),
        ("bounced", "policy"),
    ]

    invalid = [{"event": "dropped", "email": "cy@example.org", "timestamp": at,
                "sg_event_id": "d3", "reason": "Invalid"}]  # fmt: skip
    body = json.dumps(invalid).encode()
    response = client.post(
        "/v1/webhooks/sendgrid", content=body, headers=sendgrid_headers(body, str(now_ts(clock)))
    )
    assert response.json()["suppressed"] == 1
    assert suppressed(app) == ["hard_bounce"]


def test_mailgun_failures_for_its_suppression_lists_suppress_here_too(
    hooks: tuple[App, TestClient], clock: VirtualClock
) -> None:
    app, client = hooks
    at = (clock.now() - timedelta(minutes=1)).timestamp()
    reasons = {
        "suppress-unsubscribe": "ann@example.org",
        "suppress-complaint": "bob@example.org",
        "suppress-bounce": "cy@example.org",
    }
    for n, (reason, email) in enumerate(reasons.items()):
        payload = {
            "signature": mailgun_signature(str(now_ts(clock)), token=f"{n}" * 50),
            "event-data": {"id": f"mg-{n}", "event": "failed", "severity": "permanent",
                           "reason": reason, "recipient": email, "timestamp": at,
                           "delivery-status": {"code": 605, "message": "Not delivering"}},
        }  # fmt: skip
        response = client.post("/v1/webhooks/mailgun", content=json.dumps(payload).encode())
        assert response.status_code == 200, response.text
        assert response.json()["suppressed"] == 1, reason
    assert sorted(suppressed(app)) == ["complaint", "hard_bounce", "unsubscribed"]
    assert sorted(r.kind for r in tracking_rows(app)) == ["bounced", "complained", "unsubscribed"]


def test_resend_suppressed_for_a_complaint_and_failed_at_quota_are_recorded(
    hooks: tuple[App, TestClient], clock: VirtualClock
) -> None:
    app, client = hooks
    at = (clock.now() - timedelta(minutes=1)).isoformat()
    events = [
        ("msg_s", "email.suppressed", "ann@example.org", {"suppressed": {"reason": "complaint"}}),
        ("msg_f", "email.failed", "bob@example.org", {"failed": {"reason": "reached_daily_quota"}}),
    ]
    for msg_id, kind, email, extra in events:
        payload = {"type": kind, "created_at": at,
                   "data": {"email_id": f"id-{msg_id}", "to": [email], **extra}}  # fmt: skip
        body = json.dumps(payload).encode()
        headers = svix_headers(body, str(now_ts(clock)), msg_id)
        response = client.post("/v1/webhooks/resend", content=body, headers=headers)
        assert response.status_code == 200, response.text
    assert suppressed(app) == ["complaint"]
    rows = [(r.kind, r.bounce_class, r.detail) for r in tracking_rows(app)]
    assert rows == [
        ("complained", None, "suppressed by resend: complaint"),
        ("failed", None, "failed at resend: reached_daily_quota"),
    ]
