"""Hostile requests to ``/v1/webhooks/{provider}``: each gets a 4xx JSON error naming the problem,
never a 500, and nothing it carries is applied. Signatures are made here with real keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from remarket_mailer.bootstrap import App
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import AppFactory

POSTMARK_AUTH = "hook:s3cret"
MAILGUN_KEY = "mailgun-signing-key-123"
RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-test-signing-key-32-bytes").decode()
SES_TOPIC = "arn:aws:sns:eu-west-1:111122223333:ses-events"
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(
    SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
DEEP = b"[" * 50_000 + b"]" * 50_000


@pytest.fixture
def hooks(make_app: AppFactory) -> tuple[App, TestClient]:
    app = make_app(
        webhook_secrets={
            "postmark": POSTMARK_AUTH,
            "mailgun": MAILGUN_KEY,
            "resend": RESEND_SECRET,
            "sendgrid": SENDGRID_PUBLIC,
            "ses": SES_TOPIC,
        }
    )
    return app, TestClient(create_api(app))


def now_ts(clock: VirtualClock) -> int:
    return int(clock.now().timestamp())


def postmark_headers() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(POSTMARK_AUTH.encode()).decode()}


def sendgrid_headers(body: bytes, timestamp: str) -> dict[str, str]:
    signature = SENDGRID_KEY.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def svix_headers(body: bytes, timestamp: str, msg_id: str = "msg_1") -> dict[str, str]:
    key = base64.b64decode(RESEND_SECRET.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {"svix-id": msg_id, "svix-timestamp": timestamp, "svix-signature": f"v1,{signature}"}


def mailgun_signature(timestamp: str, token: str = "t" * 50) -> dict[str, str]:
    digest = hmac.new(MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return {"timestamp": timestamp, "token": token, "signature": digest.hexdigest()}


def signed_request(provider: str, body: bytes, clock: VirtualClock) -> dict[str, str]:
    """Headers that pass ``provider``'s verification for ``body`` now (none for the ESPs that
    sign inside the body)."""
    if provider == "postmark":
        return postmark_headers()
    if provider == "sendgrid":
        return sendgrid_headers(body, str(now_ts(clock)))
    if provider == "resend":
        return svix_headers(body, str(now_ts(clock)))
    return {"x-amz-sns-message-type": "Notification"} if provider == "ses" else {}


def error_of(response: Any) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["message"]


# -- item: deep JSON ------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["postmark", "sendgrid", "resend", "mailgun", "ses"])
def test_fifty_thousand_levels_of_json_are_a_400_not_a_crash(
    hooks: tuple[App, TestClient], clock: VirtualClock, provider: str
) -> None:
    _, client = hooks
    response = client.post(
        f"/v1/webhooks/{provider}", content=DEEP, headers=signed_request(provider, DEEP, clock)
    )
    status, error, message = error_of(response)
    assert (status, error) == (400, "invalid_json")
    assert "nests more than 64 levels" in message and provider in message
