"""ESP webhook parsers: real signatures made here, verified for real, mapped to our vocabulary.

Keys are generated per test run (ECDSA P-256 for SendGrid, RSA + self-signed certificate for
SNS), so a parser that skipped verification or checked the wrong bytes fails these tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from remarket_mailer.errors import ValidationError
from remarket_mailer.tracking import mailgun, postmark, resend, sendgrid, ses
from remarket_mailer.tracking.events import (
    EVENT_KINDS,
    TrackingEvent,
    WebhookReplayError,
    WebhookSignatureError,
    bounce_class_from_code,
    classify_bounce,
)
from remarket_mailer.tracking.webhooks import PROVIDERS, read_webhook

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def assert_vocabulary(events: list[TrackingEvent]) -> None:
    for event in events:
        assert event.kind in EVENT_KINDS
        assert event.occurred_at.tzinfo is not None


# -- bounce classification (compliance.md section 3) ----------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("smtp; 550 5.1.1 user unknown", "hard"),
        ("550 5.1.10 null MX", "hard"),
        ("5.2.1 mailbox disabled", "hard"),
        ("552 5.2.2 mailbox full", "soft"),
        ("451 4.7.1 greylisted", "soft"),
        ("4.4.7 delivery time expired", "soft"),
        ("550 5.7.26 unauthenticated email is not accepted", "policy"),
        ("554 5.7.1 rejected by policy", "policy"),
        ("554 5.6.0 content rejected", None),
        ("250 2.0.0 OK", None),
        ("no code here, version 1.2.3.4", None),
        (None, None),
    ],
)
def test_enhanced_status_codes(text: str | None, expected: str | None) -> None:
    assert bounce_class_from_code(text) == expected


def test_a_specific_code_wins_over_the_esp_label() -> None:
    assert classify_bounce("5.7.1 DMARC failure", "hard") == "policy"
    assert classify_bounce("5.2.2 over quota", "hard") == "soft"
    assert classify_bounce("5.3.0 other", "hard") == "hard"
    assert classify_bounce(None, "soft") == "soft"


# -- Postmark --------------------------------------------------------------------------------

POSTMARK_SECRET = "hook:s3cret-pass"


def basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def test_postmark_hard_bounce() -> None:
    body = dumps(
        {
            "RecordType": "Bounce",
            "ID": 4323372036854775807,
            "Type": "HardBounce",
            "TypeCode": 1,
            "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "Description": "The server was unable to deliver your message",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
            "Email": "Ann@Example.org",
            "BouncedAt": "2026-01-02T03:04:05.1234567Z",
            "Inactive": True,
            "MessageStream": "outbound",
            "Metadata": {"delivery_id": "17", "workflow": "abandoned_cart"},
        }
    )
    [event] = postmark.parse_webhook(basic(POSTMARK_SECRET), body, POSTMARK_SECRET)
    assert event.kind == "bounced" and event.bounce_class == "hard"
    assert event.email == "ann@example.org"
    assert event.provider == "postmark"
    assert event.provider_message_id == "883953f4-6105-42a2-a16a-77a8eac79483"
    assert event.delivery_id == "17"
    assert event.occurred_at == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert event.raw_id == "Bounce:4323372036854775807"


WHEN = "2026-01-02T03:04:05Z"


def pm_bounce(bounce_type: str, **extra: Any) -> dict[str, Any]:
    return {"RecordType": "Bounce", "Type": bounce_type, "Email": "a@x.org", "BouncedAt": WHEN,
            **extra}  # fmt: skip


def pm_change(suppress: bool, reason: str | None = None) -> dict[str, Any]:
    return {"RecordType": "SubscriptionChange", "Recipient": "a@x.org", "ChangedAt": WHEN,
            "SuppressSending": suppress, "SuppressionReason": reason}  # fmt: skip


@pytest.mark.parametrize(
    ("record", "kind", "bounce_class"),
    [
        (
            {"RecordType": "Delivery", "Recipient": "a@x.org", "DeliveredAt": WHEN},
            "delivered",
            None,
        ),
        ({"RecordType": "Open", "Recipient": "a@x.org", "ReceivedAt": WHEN}, "opened", None),
        ({"RecordType": "Click", "Recipient": "a@x.org", "ReceivedAt": WHEN}, "clicked", None),
        ({**pm_bounce("SpamComplaint"), "RecordType": "SpamComplaint"}, "complained", None),
        (pm_bounce("SoftBounce"), "bounced", "soft"),
        (pm_bounce("BadEmailAddress"), "bounced", "hard"),
        (pm_bounce("Blocked", Details="554 5.7.1 blocked"), "bounced", "policy"),
        (pm_bounce("Transient"), "deferred", None),
        (pm_change(True, "ManualSuppression"), "unsubscribed", None),
        (pm_change(True, "HardBounce"), "bounced", "hard"),
        (pm_change(True, "SpamComplaint"), "complained", None),
    ],
)
def test_postmark_record_types(record: dict[str, Any], kind: str, bounce_class: str | None) -> None:
    [event] = postmark.parse_webhook(basic(POSTMARK_SECRET), dumps(record), POSTMARK_SECRET)
    assert (event.kind, event.bounce_class, event.email) == (kind, bounce_class, "a@x.org")
    assert event.raw_id


def test_postmark_records_outside_the_vocabulary_give_nothing() -> None:
    for record in (pm_bounce("AutoResponder"), pm_change(False), {"RecordType": "Inbound"}):
        assert postmark.parse_webhook(basic(POSTMARK_SECRET), dumps(record), POSTMARK_SECRET) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("hook:wrong"),
        {"Authorization": "Bearer hook:s3cret-pass"},
        {"Authorization": "Basic !!!not-base64"},
    ],
)
def test_postmark_refuses_wrong_credentials(headers: dict[str, str]) -> None:
    body = dumps({"RecordType": "Delivery", "Recipient": "a@x.org", "DeliveredAt": "2026-01-02"})
    with pytest.raises(WebhookSignatureError):
        postmark.parse_webhook(headers, body, POSTMARK_SECRET)


def test_no_secret_configured_refuses_everything() -> None:
    body = dumps({"RecordType": "Delivery"})
    with pytest.raises(WebhookSignatureError, match="no webhook secret"):
        postmark.parse_webhook(basic(":"), body, "")
    with pytest.raises(WebhookSignatureError, match="no webhook secret"):
        mailgun.parse_webhook({}, dumps({"signature": {}}), "")


def test_postmark_signed_garbage_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        postmark.parse_webhook(basic(POSTMARK_SECRET), b"not json", POSTMARK_SECRET)


# -- SendGrid --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sendgrid_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


def sendgrid_headers(private: ec.EllipticCurvePrivateKey, body: bytes, ts: str) -> dict[str, str]:
    signature = private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
    }


SENDGRID_EVENTS = [
    {"event": "processed", "email": "a@x.org", "timestamp": 1767323045, "sg_event_id": "e0"},
    {"event": "delivered", "email": "a@x.org", "timestamp": 1767323045, "sg_event_id": "e1",
     "sg_message_id": "AbC123.filter0001.16648.5515E0B88.0", "delivery_id": "17"},
    {"event": "bounce", "type": "bounce", "email": "b@x.org", "timestamp": 1767323045,
     "status": "5.1.1", "reason": "550 5.1.1 user unknown", "sg_event_id": "e2",
     "sg_message_id": "Def456.filter", "delivery_id": "18"},
    {"event": "bounce", "type": "blocked", "email": "c@x.org", "timestamp": 1767323045,
     "status": "5.7.1", "reason": "554 5.7.1 listed", "sg_event_id": "e3"},
    {"event": "deferred", "email": "d@x.org", "timestamp": 1767323045, "sg_event_id": "e4",
     "response": "451 4.7.1 try later"},
    {"event": "open", "email": "e@x.org", "timestamp": 1767323045, "sg_event_id": "e5"},
    {"event": "click", "email": "e@x.org", "timestamp": 1767323045, "sg_event_id": "e6",
     "url": "https://shop.example/c"},
    {"event": "spamreport", "email": "f@x.org", "timestamp": 1767323045, "sg_event_id": "e7"},
    {"event": "group_unsubscribe", "email": "g@x.org", "timestamp": 1767323045,
     "sg_event_id": "e8"},
    {"event": "dropped", "email": "h@x.org", "timestamp": 1767323045, "sg_event_id": "e9",
     "reason": "Bounced Address"},
]  # fmt: skip


def test_sendgrid_signed_batch(sendgrid_key: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    private, public_b64 = sendgrid_key
    body = dumps(SENDGRID_EVENTS)
    headers = sendgrid_headers(private, body, "1767323045")
    events = sendgrid.parse_webhook(headers, body, public_b64, now=1767323045.0)
    assert_vocabulary(events)
    summary = [(e.kind, e.email, e.bounce_class, e.raw_id) for e in events]
    assert summary == [
        ("delivered", "a@x.org", None, "e1"),
        ("bounced", "b@x.org", "hard", "e2"),
        ("bounced", "c@x.org", "policy", "e3"),
        ("deferred", "d@x.org", None, "e4"),
        ("opened", "e@x.org", None, "e5"),
        ("clicked", "e@x.org", None, "e6"),
        ("complained", "f@x.org", None, "e7"),
        ("unsubscribed", "g@x.org", None, "e8"),
        ("bounced", "h@x.org", "hard", "e9"),
    ]
    assert events[0].provider_message_id == "AbC123"
    assert events[0].delivery_id == "17" and events[1].delivery_id == "18"
    assert events[0].occurred_at == datetime.fromtimestamp(1767323045, tz=UTC)


@pytest.mark.parametrize(
    ("reason", "kind", "bounce_class"),
    [
        ("Bounced Address", "bounced", "hard"),
        ("Invalid", "bounced", "hard"),
        ("Unsubscribed Address", "unsubscribed", None),
        ("Spam Reporting Address", "complained", None),
        # Sender-side drops: nothing wrong with the address, so a policy bounce (no suppression).
        ("Invalid SMTPAPI header", "bounced", "policy"),
        ("Spam Content (if spam checker app enabled)", "bounced", "policy"),
        ("Spam Content", "bounced", "policy"),
        ("Recipient List over Package Quota", "bounced", "policy"),
        ("Duplicate message", "bounced", "policy"),
        ("Something invalid we never heard of", "bounced", "policy"),
    ],
)
def test_sendgrid_drop_reasons_are_matched_exactly(
    sendgrid_key: tuple[ec.EllipticCurvePrivateKey, str],
    reason: str,
    kind: str,
    bounce_class: str | None,
) -> None:
    private, public_b64 = sendgrid_key
    drop = {"event": "dropped", "email": "h@x.org", "timestamp": 1767323045,
            "sg_event_id": "e9", "reason": reason}  # fmt: skip
    body = dumps([drop])
    headers = sendgrid_headers(private, body, "1767323045")
    [event] = sendgrid.parse_webhook(headers, body, public_b64, now=1767323045.0)
    assert (event.kind, event.bounce_class, event.detail) == (kind, bounce_class, reason)


def test_sendgrid_refuses_tampering(sendgrid_key: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    private, public_b64 = sendgrid_key
    body = dumps(SENDGRID_EVENTS[:2])
    headers = sendgrid_headers(private, body, "1767323045")
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_b64 = base64.b64encode(
        other.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    moved_timestamp = {**headers, "X-Twilio-Email-Event-Webhook-Timestamp": "1767323046"}
    attempts: list[tuple[dict[str, str], bytes, str]] = [
        (headers, body.replace(b"a@x.org", b"z@x.org"), public_b64),
        (moved_timestamp, body, public_b64),
        (headers, body, other_b64),
        ({}, body, public_b64),
        (headers, body, "bm90IGEga2V5"),
    ]
    for attempt_headers, attempt_body, key in attempts:
        with pytest.raises(WebhookSignatureError):
            sendgrid.parse_webhook(attempt_headers, attempt_body, key, now=1767323045.0)


def test_sendgrid_refuses_a_signature_older_or_newer_than_ten_minutes(
    sendgrid_key: tuple[ec.EllipticCurvePrivateKey, str],
) -> None:
    private, public_b64 = sendgrid_key
    body = dumps(SENDGRID_EVENTS[1:2])
    headers = sendgrid_headers(private, body, "1767323045")
    for now in (1767323045.0 + 601, 1767323045.0 - 601):
        with pytest.raises(WebhookReplayError, match="sendgrid"):
            sendgrid.parse_webhook(headers, body, public_b64, now=now)
    for now in (1767323045.0 + 599, 1767323045.0 - 599):
        assert sendgrid.parse_webhook(headers, body, public_b64, now=now)
    huge = "9" * 400
    with pytest.raises(WebhookSignatureError, match="not Unix seconds"):
        sendgrid.parse_webhook(sendgrid_headers(private, body, huge), body, public_b64)


def test_sendgrid_accepts_a_pem_key(sendgrid_key: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    private, _ = sendgrid_key
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    body = dumps(SENDGRID_EVENTS[1:2])
    headers = {k.lower(): v for k, v in sendgrid_headers(private, body, "1").items()}
    assert [e.kind for e in sendgrid.parse_webhook(headers, body, pem, now=1.0)] == ["delivered"]


# -- Mailgun ---------------------------------------------------------------------------------

MAILGUN_KEY = "mailgun-signing-key-123"
MAILGUN_NOW = 1767323045.0 + 60


def mailgun_body(
    event_data: dict[str, Any],
    key: str = MAILGUN_KEY,
    *,
    timestamp: str = "1767323045",
    token: str = "a" * 50,
) -> bytes:
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return dumps(
        {
            "signature": {
                "timestamp": timestamp,
                "token": token,
                "signature": signature.hexdigest(),
            },
            "event-data": event_data,
        }
    )


def test_mailgun_permanent_failure_is_a_hard_bounce() -> None:
    body = mailgun_body(
        {
            "id": "G9Bn5sl1TC6nu79C8C0bwg",
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "timestamp": 1767323045.123,
            "recipient": "ann@example.org",
            "delivery-status": {"code": 550, "bounce-code": "5.1.1", "message": "user unknown"},
            "message": {"headers": {"message-id": "2026.1@mg.shop.example"}},
            "user-variables": {"delivery_id": "17"},
        }
    )
    [event] = mailgun.parse_webhook({}, body, MAILGUN_KEY, now=MAILGUN_NOW)
    assert (event.kind, event.bounce_class) == ("bounced", "hard")
    assert event.provider_message_id == "2026.1@mg.shop.example"
    assert event.delivery_id == "17"
    assert event.raw_id == "G9Bn5sl1TC6nu79C8C0bwg:1767323045.123"


@pytest.mark.parametrize(
    ("event_data", "kind", "bounce_class"),
    [
        ({"event": "failed", "severity": "temporary", "reason": "generic"}, "deferred", None),
        ({"event": "failed", "severity": "permanent", "reason": "bounce",
          "delivery-status": {"code": 550, "message": "5.7.1 spam policy"}}, "bounced", "policy"),
        ({"event": "failed", "severity": "permanent", "reason": "suppress-bounce"},
         "bounced", "hard"),
        ({"event": "failed", "severity": "permanent", "reason": "suppress-unsubscribe"},
         "unsubscribed", None),
        ({"event": "failed", "severity": "permanent", "reason": "suppress-complaint"},
         "complained", None),
        ({"event": "delivered"}, "delivered", None),
        ({"event": "opened"}, "opened", None),
        ({"event": "clicked", "url": "https://shop.example/c"}, "clicked", None),
        ({"event": "complained"}, "complained", None),
        ({"event": "unsubscribed"}, "unsubscribed", None),
    ],
)  # fmt: skip
def test_mailgun_event_types(
    event_data: dict[str, Any], kind: str, bounce_class: str | None
) -> None:
    data = {"id": "x", "timestamp": 1767323045, "recipient": "a@x.org", **event_data}
    [event] = mailgun.parse_webhook({}, mailgun_body(data), MAILGUN_KEY, now=MAILGUN_NOW)
    assert (event.kind, event.bounce_class) == (kind, bounce_class)


def test_mailgun_accepted_gives_nothing() -> None:
    data = {"event": "accepted", "timestamp": 1767323045, "recipient": "a@x.org"}
    assert mailgun.parse_webhook({}, mailgun_body(data), MAILGUN_KEY, now=MAILGUN_NOW) == []


def test_mailgun_refuses_bad_signatures() -> None:
    data = {"event": "delivered", "timestamp": 1767323045, "recipient": "a@x.org"}
    good = json.loads(mailgun_body(data))
    tampered = {**good, "signature": {**good["signature"], "timestamp": "1767323046"}}
    for body in (
        mailgun_body(data, key="the-api-key-instead"),
        dumps(tampered),
        dumps({"event-data": data}),
        b"[]",
    ):
        with pytest.raises(WebhookSignatureError):
            mailgun.parse_webhook({}, body, MAILGUN_KEY, now=MAILGUN_NOW)
    for token in ("", "a b", "a" * 256, "é" * 10):
        with pytest.raises(WebhookSignatureError):
            mailgun.parse_webhook({}, mailgun_body(data, token=token), MAILGUN_KEY, now=MAILGUN_NOW)
    # Not JSON at all: the body is unreadable before any signature is in question.
    with pytest.raises(ValidationError, match="not valid JSON"):
        mailgun.parse_webhook({}, b"not json", MAILGUN_KEY, now=MAILGUN_NOW)


def test_mailgun_refuses_signatures_older_than_15_minutes_or_from_the_future() -> None:
    data = {"event": "complained", "timestamp": 1767323045, "recipient": "a@x.org"}
    body = mailgun_body(data)
    signed_at = 1767323045.0
    for now in (signed_at + 901, signed_at - 301):
        with pytest.raises(WebhookReplayError, match="mailgun"):
            mailgun.parse_webhook({}, body, MAILGUN_KEY, now=now)
    for now in (signed_at + 899, signed_at - 299):
        assert mailgun.parse_webhook({}, body, MAILGUN_KEY, now=now)
    with pytest.raises(WebhookSignatureError, match="not Unix seconds"):
        mailgun.parse_webhook({}, mailgun_body(data, timestamp="9" * 400), MAILGUN_KEY)
    hook = mailgun.read_webhook({}, body, MAILGUN_KEY, now=signed_at)
    assert hook.token == "a" * 50 and [e.kind for e in hook.events] == ["complained"]


def test_one_door_keeps_the_mailgun_token_for_once_and_knows_only_our_esps() -> None:
    data = {"event": "complained", "timestamp": 1767323045, "recipient": "a@x.org"}
    received = read_webhook("mailgun", {}, mailgun_body(data), MAILGUN_KEY, now=MAILGUN_NOW)
    assert [e.kind for e in received.events] == ["complained"]
    assert received.once is not None
    assert (received.once.provider, received.once.token) == ("mailgun", "a" * 50)
    assert received.once.keep_for == timedelta(minutes=20)  # 15 min old + 5 min ahead
    assert received.subscribe_url is None
    # The signature is checked on the caller's clock: an hour later it is stale.
    with pytest.raises(WebhookReplayError):
        read_webhook("mailgun", {}, mailgun_body(data), MAILGUN_KEY, now=MAILGUN_NOW + 3600)
    assert set(PROVIDERS) == {"postmark", "sendgrid", "mailgun", "resend", "ses"}
    with pytest.raises(KeyError):
        read_webhook("smtp", {}, b"{}", "secret", now=MAILGUN_NOW)


# -- Resend (Svix) ---------------------------------------------------------------------------

RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-test-signing-key-32-bytes").decode()
NOW = 1767323045.0


def svix_headers(body: bytes, *, msg_id: str = "msg_2Lh9", ts: float = NOW) -> dict[str, str]:
    key = base64.b64decode(RESEND_SECRET.removeprefix("whsec_"))
    signed = f"{msg_id}.{int(ts)}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(ts)),
        "svix-signature": f"v1,{base64.b64encode(b'old-secret-sig').decode()} v1,{signature}",
    }


def resend_body(kind: str, **data: Any) -> bytes:
    return dumps(
        {
            "type": kind,
            "created_at": "2026-01-02T03:04:05.000Z",
            "data": {
                "email_id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c",
                "to": ["ann@example.org"],
                "subject": "You left something",
                "tags": {"delivery_id": "17"},
                **data,
            },
        }
    )


def test_resend_permanent_bounce() -> None:
    body = resend_body(
        "email.bounced",
        bounce={
            "type": "Permanent",
            "subType": "General",
            "message": "The recipient's email provider sent a hard bounce message.",
            "diagnosticCode": ["smtp; 550 5.1.1 user unknown"],
        },
    )
    [event] = resend.parse_webhook(svix_headers(body), body, RESEND_SECRET, now=NOW)
    assert (event.kind, event.bounce_class) == ("bounced", "hard")
    assert event.email == "ann@example.org"
    assert event.provider_message_id == "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"
    assert event.delivery_id == "17"
    assert event.raw_id == "msg_2Lh9"
    assert event.occurred_at == T0


@pytest.mark.parametrize(
    ("kind", "data", "expected", "bounce_class"),
    [
        ("email.delivered", {}, "delivered", None),
        ("email.delivery_delayed", {}, "deferred", None),
        ("email.complained", {}, "complained", None),
        ("email.opened", {}, "opened", None),
        ("email.clicked", {"click": {"link": "https://shop.example/c"}}, "clicked", None),
        ("email.bounced", {"bounce": {"type": "Transient"}}, "bounced", "soft"),
        ("email.bounced", {"bounce": {"type": "Permanent",
                                      "diagnosticCode": ["552 5.2.2 mailbox full"]}},
         "bounced", "soft"),
        ("email.suppressed", {}, "bounced", "hard"),
        ("email.suppressed", {"suppressed": {"type": "OnAccountSuppressionList",
                                             "message": "on the suppression list"}},
         "bounced", "hard"),
        ("email.suppressed", {"suppressed": {"reason": "complaint"}}, "complained", None),
        ("email.suppressed", {"suppressed": {"reason": "bounce"}}, "bounced", "hard"),
        ("email.failed", {"failed": {"reason": "reached_daily_quota"}}, "failed", None),
        ("email.failed", {}, "failed", None),
    ],
)  # fmt: skip
def test_resend_event_types(
    kind: str, data: dict[str, Any], expected: str, bounce_class: str | None
) -> None:
    body = resend_body(kind, **data)
    [event] = resend.parse_webhook(svix_headers(body), body, RESEND_SECRET, now=NOW)
    assert (event.kind, event.bounce_class) == (expected, bounce_class)


def test_resend_other_types_give_nothing() -> None:
    for kind in ("email.sent", "contact.updated", "domain.created"):
        body = resend_body(kind)
        assert resend.parse_webhook(svix_headers(body), body, RESEND_SECRET, now=NOW) == []


def test_resend_refuses_bad_or_stale_signatures() -> None:
    body = resend_body("email.delivered")
    other_secret = "whsec_" + base64.b64encode(b"another-key").decode()
    attempts: list[tuple[dict[str, str], bytes, str, float]] = [
        (svix_headers(body), body + b" ", RESEND_SECRET, NOW),
        (svix_headers(body), body, other_secret, NOW),
        ({**svix_headers(body), "svix-id": "msg_other"}, body, RESEND_SECRET, NOW),
        (svix_headers(body), body, RESEND_SECRET, NOW + 301),
        (svix_headers(body), body, RESEND_SECRET, NOW - 301),
        ({k: v for k, v in svix_headers(body).items() if k != "svix-signature"}, body,
         RESEND_SECRET, NOW),
    ]  # fmt: skip
    for headers, attempt_body, secret, now in attempts:
        with pytest.raises(WebhookSignatureError):
            resend.parse_webhook(headers, attempt_body, secret, now=now)
    # Inside the tolerance it passes.
    assert resend.parse_webhook(svix_headers(body), body, RESEND_SECRET, now=NOW + 299)


# -- Amazon SES via SNS ----------------------------------------------------------------------

TOPIC = "arn:aws:sns:eu-west-1:111122223333:ses-events"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc123.pem"


@pytest.fixture(scope="module")
def sns_signer() -> Iterator[tuple[rsa.RSAPrivateKey, bytes]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - timedelta(days=1))
        .not_valid_after(T0 + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    yield key, cert.public_bytes(serialization.Encoding.PEM)


def sign_sns(message: dict[str, Any], key: rsa.RSAPrivateKey, version: str = "2") -> bytes:
    # Written from the SNS docs independently of the parser's own string_to_sign.
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{n}\n{message[n]}\n" for n in names if n in message)
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
    signature = key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    signed = {
        **message,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
        "SigningCertURL": message.get("SigningCertURL", CERT_URL),
    }
    return dumps(signed)


def ses_notification(ses_event: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "5c1e1d3a-0000-4000-8000-000000000001",
        "TopicArn": TOPIC,
        "Message": json.dumps(ses_event),
        "Timestamp": "2026-01-02T03:04:06.000Z",
    }


SES_BOUNCE = {
    "eventType": "Bounce",
    "bounce": {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "timestamp": "2026-01-02T03:04:05.000Z",
        "bouncedRecipients": [
            {"emailAddress": "ann@example.org", "action": "failed", "status": "5.1.1",
             "diagnosticCode": "smtp; 550 5.1.1 user unknown"},
        ],
    },
    "mail": {
        "messageId": "0102018c-ses-id",
        "destination": ["ann@example.org"],
        "tags": {"delivery_id": ["17"], "workflow": ["abandoned_cart"]},
    },
}  # fmt: skip


def sns_headers(kind: str = "Notification") -> dict[str, str]:
    return {"x-amz-sns-message-type": kind, "x-amz-sns-topic-arn": TOPIC}


def test_ses_bounce_through_sns(sns_signer: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    key, pem = sns_signer
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return pem

    for version in ("1", "2"):
        body = sign_sns(ses_notification(SES_BOUNCE), key, version)
        [event] = ses.parse_webhook(sns_headers(), body, TOPIC, fetch_certificate=fetch)
        assert (event.kind, event.bounce_class) == ("bounced", "hard")
        assert event.email == "ann@example.org"
        assert event.provider_message_id == "0102018c-ses-id"
        assert event.delivery_id == "17"
        assert event.occurred_at == T0
        assert event.raw_id == "5c1e1d3a-0000-4000-8000-000000000001"
    assert fetched == [CERT_URL, CERT_URL]


@pytest.mark.parametrize(
    ("ses_event", "expected"),
    [
        ({"eventType": "Delivery", "delivery": {"recipients": ["a@x.org"],
          "timestamp": "2026-01-02T03:04:05Z"}}, [("delivered", None)]),
        ({"eventType": "Complaint", "complaint": {"complainedRecipients": [
          {"emailAddress": "a@x.org"}], "complaintFeedbackType": "abuse"}}, [("complained", None)]),
        ({"eventType": "DeliveryDelay", "deliveryDelay": {"delayType": "MailboxFull",
          "delayedRecipients": [{"emailAddress": "a@x.org", "status": "4.2.2"}]}},
         [("deferred", None)]),
        ({"eventType": "Bounce", "bounce": {"bounceType": "Transient", "bounceSubType":
          "MailboxFull", "bouncedRecipients": [{"emailAddress": "a@x.org"}]}},
         [("bounced", "soft")]),
        ({"eventType": "Bounce", "bounce": {"bounceType": "Permanent", "bouncedRecipients": [
          {"emailAddress": "a@x.org", "diagnosticCode": "550 5.7.26 DMARC"}]}},
         [("bounced", "policy")]),
        ({"eventType": "Open", "open": {}}, [("opened", None)]),
        ({"eventType": "Click", "click": {"link": "https://shop.example/c"}}, [("clicked", None)]),
        ({"eventType": "Subscription", "subscription": {}}, [("unsubscribed", None)]),
        ({"eventType": "Send", "send": {}}, []),
        ({"notificationType": "Bounce", "bounce": {"bounceType": "Permanent",
          "bouncedRecipients": [{"emailAddress": "a@x.org"}, {"emailAddress": "b@x.org"}]}},
         [("bounced", "hard"), ("bounced", "hard")]),
    ],
)  # fmt: skip
def test_ses_event_types(
    sns_signer: tuple[rsa.RSAPrivateKey, bytes],
    ses_event: dict[str, Any],
    expected: list[tuple[str, str | None]],
) -> None:
    key, pem = sns_signer
    ses_event = {"mail": {"messageId": "m", "destination": ["a@x.org"]}, **ses_event}
    body = sign_sns(ses_notification(ses_event), key)
    events = ses.parse_webhook(sns_headers(), body, TOPIC, fetch_certificate=lambda url: pem)
    assert [(e.kind, e.bounce_class) for e in events] == expected
    assert len({e.raw_id for e in events}) == len(events)
    assert_vocabulary(events)


def test_ses_subscription_confirmation_exposes_the_url(
    sns_signer: tuple[rsa.RSAPrivateKey, bytes],
) -> None:
    key, pem = sns_signer
    subscribe_url = (
        "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
        f"&TopicArn={TOPIC}&Token=2336412f37"
    )
    body = sign_sns(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37",
            "TopicArn": TOPIC,
            "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
            "SubscribeURL": subscribe_url,
            "Timestamp": "2026-01-02T03:04:05.000Z",
        },
        key,
    )
    headers = sns_headers("SubscriptionConfirmation")
    assert ses.parse_webhook(headers, body, TOPIC, fetch_certificate=lambda url: pem) == []
    confirmation = ses.parse_sns(
        headers, body, topic_arns={TOPIC}, fetch_certificate=lambda url: pem
    )
    assert confirmation.type == "SubscriptionConfirmation"
    assert confirmation.subscribe_url == subscribe_url
    assert confirmation.events == []


def test_ses_validation_notification_gives_nothing(
    sns_signer: tuple[rsa.RSAPrivateKey, bytes],
) -> None:
    key, pem = sns_signer
    message = {
        **ses_notification({}),
        "Message": "Successfully validated SNS topic for Amazon SES event publishing.",
    }
    body = sign_sns(message, key)
    assert ses.parse_webhook(sns_headers(), body, TOPIC, fetch_certificate=lambda u: pem) == []


@pytest.mark.parametrize(
    "cert_url",
    [
        "http://sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com/cert.txt",
        "https://user@sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
    ],
)
def test_ses_refuses_untrusted_certificate_urls(
    sns_signer: tuple[rsa.RSAPrivateKey, bytes], cert_url: str
) -> None:
    key, pem = sns_signer
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return pem

    body = sign_sns({**ses_notification(SES_BOUNCE), "SigningCertURL": cert_url}, key)
    with pytest.raises(WebhookSignatureError):
        ses.parse_webhook(sns_headers(), body, TOPIC, fetch_certificate=fetch)
    assert fetched == []


def test_ses_refuses_forgeries(sns_signer: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    key, pem = sns_signer
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = json.loads(sign_sns(ses_notification(SES_BOUNCE), key))
    tampered = {**good, "Message": good["Message"].replace("ann@", "bob@")}
    stranger_topic = sign_sns(
        {**ses_notification(SES_BOUNCE), "TopicArn": "arn:aws:sns:eu-west-1:999:theirs"}, key
    )
    attempts: list[tuple[dict[str, str], bytes]] = [
        (sns_headers(), dumps(tampered)),
        (sns_headers(), sign_sns(ses_notification(SES_BOUNCE), other_key)),
        (sns_headers(), dumps({**good, "SignatureVersion": "3"})),
        (sns_headers(), stranger_topic),
        (sns_headers("SubscriptionConfirmation"), dumps(good)),
    ]
    for headers, body in attempts:
        with pytest.raises(WebhookSignatureError):
            ses.parse_webhook(headers, body, TOPIC, fetch_certificate=lambda url: pem)
    with pytest.raises(ValidationError, match="not valid JSON"):
        ses.parse_webhook(sns_headers(), b"not json", TOPIC, fetch_certificate=lambda url: pem)
    with pytest.raises(WebhookSignatureError, match="no webhook secret"):
        ses.parse_webhook(sns_headers(), dumps(good), " ", fetch_certificate=lambda url: pem)


@pytest.mark.parametrize("when", [10**400, 1e308, "9999-12-31T23:59:59-14:00"], ids=str)
def test_ses_event_time_no_datetime_holds_falls_back_or_skips(
    sns_signer: tuple[rsa.RSAPrivateKey, bytes], when: Any
) -> None:
    key, pem = sns_signer
    bounce = {**SES_BOUNCE["bounce"], "timestamp": when}  # type: ignore[dict-item]
    message = ses_notification({**SES_BOUNCE, "bounce": bounce})
    body = sign_sns(message, key)
    [event] = ses.parse_webhook(sns_headers(), body, TOPIC, fetch_certificate=lambda url: pem)
    assert event.occurred_at == datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)  # the SNS Timestamp
    body = sign_sns({**message, "Timestamp": when}, key)
    assert ses.parse_webhook(sns_headers(), body, TOPIC, fetch_certificate=lambda url: pem) == []


# --- the client of an open or click ---------------------------------------------------------
# Kept so the report can tell a person from Apple's privacy proxy or a link scanner; the
# field names are the ESPs' documented ones (Postmark UserAgent, SendGrid useragent, SES
# open/click userAgent; Mailgun's and Resend's are checked against their samples in
# tests/contract).

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"


def test_postmark_open_and_click_keep_the_user_agent() -> None:
    for record_type in ("Open", "Click"):
        record = {"RecordType": record_type, "Recipient": "a@x.org", "ReceivedAt": WHEN,
                  "UserAgent": IPHONE}  # fmt: skip
        [event] = postmark.parse_webhook(basic(POSTMARK_SECRET), dumps(record), POSTMARK_SECRET)
        assert event.user_agent == IPHONE
    delivered = {"RecordType": "Delivery", "Recipient": "a@x.org", "DeliveredAt": WHEN,
                 "UserAgent": IPHONE}  # fmt: skip
    [event] = postmark.parse_webhook(basic(POSTMARK_SECRET), dumps(delivered), POSTMARK_SECRET)
    assert event.user_agent is None


def test_sendgrid_open_keeps_the_user_agent(
    sendgrid_key: tuple[ec.EllipticCurvePrivateKey, str],
) -> None:
    private, public_b64 = sendgrid_key
    body = dumps([{"event": "open", "email": "e@x.org", "timestamp": 1767323045,
                   "sg_event_id": "u1", "useragent": IPHONE}])  # fmt: skip
    headers = sendgrid_headers(private, body, "1767323045")
    [event] = sendgrid.parse_webhook(headers, body, public_b64, now=1767323045.0)
    assert (event.kind, event.user_agent) == ("opened", IPHONE)


def test_ses_click_keeps_the_user_agent(sns_signer: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    key, pem = sns_signer
    ses_event = {"mail": {"messageId": "m", "destination": ["a@x.org"]}, "eventType": "Click",
                 "click": {"link": "https://shop.example/c", "userAgent": IPHONE}}  # fmt: skip
    body = sign_sns(ses_notification(ses_event), key)
    [event] = ses.parse_webhook(sns_headers(), body, TOPIC, fetch_certificate=lambda url: pem)
    assert (event.kind, event.user_agent) == ("clicked", IPHONE)
