"""Hostile requests to ``/v1/webhooks/{provider}``: each gets a 4xx JSON error naming the problem,
never a 500, and nothing it carries is applied. Signatures are made here with real keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import select

from remarket_mailer.bootstrap import App
from remarket_mailer.db.migrate import downgrade, upgrade
from remarket_mailer.db.models import Suppression, TrackingEvent, WebhookToken
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.tracking import ses
from remarket_mailer.tracking.sns import SnsCertificates
from tests.conftest import T0, AppFactory

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


def bounce(
    provider: str,
    clock: VirtualClock,
    *,
    when: Any = None,
    delivery_id: str = "17",
    message_id: str = "msg-1",
    detail: str = "smtp; 550 5.1.1 user unknown",
    email: str = "ann@example.org",
) -> tuple[bytes, dict[str, str]]:
    """A signed hard bounce from ``provider`` (body and headers); ``when`` is the event's own
    timestamp as the ESP would write it (default: now)."""
    at = clock.now() - timedelta(minutes=1)
    payload: Any
    if provider == "postmark":
        payload = {"RecordType": "Bounce", "ID": 1, "Type": "HardBounce", "Email": email,
                   "BouncedAt": at.isoformat() if when is None else when,
                   "MessageID": message_id, "Details": detail,
                   "Metadata": {"delivery_id": delivery_id}}  # fmt: skip
    elif provider == "sendgrid":
        payload = [{"event": "bounce", "type": "bounce", "email": email, "status": "5.1.1",
                    "timestamp": int(at.timestamp()) if when is None else when,
                    "reason": detail, "sg_event_id": "sg-1", "sg_message_id": message_id,
                    "delivery_id": delivery_id}]  # fmt: skip
    elif provider == "resend":
        payload = {"type": "email.bounced",
                   "created_at": at.isoformat() if when is None else when,
                   "data": {"email_id": message_id, "to": [email],
                            "tags": {"delivery_id": delivery_id},
                            "bounce": {"type": "Permanent", "message": detail}}}  # fmt: skip
    else:
        payload = {"signature": mailgun_signature(str(now_ts(clock))),
                   "event-data": {"id": "mg-1", "event": "failed", "severity": "permanent",
                                  "reason": "bounce", "recipient": email,
                                  "timestamp": at.timestamp() if when is None else when,
                                  "delivery-status": {"code": 550, "message": detail},
                                  "message": {"headers": {"message-id": message_id}},
                                  "user-variables": {"delivery_id": delivery_id}}}  # fmt: skip
    body = json.dumps(payload).encode()
    return body, signed_request(provider, body, clock)


def tracking_rows(app: App) -> list[TrackingEvent]:
    with app.uow() as session:
        rows = list(session.scalars(select(TrackingEvent).order_by(TrackingEvent.id)))
        session.expunge_all()
    return rows


def suppressed(app: App) -> list[str]:
    with app.uow() as session:
        return list(session.scalars(select(Suppression.reason)))


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


# -- item: huge timestamps, odd ids ---------------------------------------------------------


@pytest.mark.parametrize("digits", [400, 12])
def test_a_svix_timestamp_that_is_not_unix_seconds_is_a_401(
    hooks: tuple[App, TestClient], clock: VirtualClock, digits: int
) -> None:
    app, client = hooks
    body, _ = bounce("resend", clock)
    response = client.post(
        "/v1/webhooks/resend", content=body, headers=svix_headers(body, "9" * digits)
    )
    assert error_of(response) == (
        401,
        "bad_signature",
        "resend: the signature timestamp is not Unix seconds",
    )
    assert suppressed(app) == []


@pytest.mark.parametrize(
    ("provider", "when"),
    [
        ("postmark", "9999-12-31T23:59:59-14:00"),
        ("postmark", "9" * 400),
        ("sendgrid", 10**400),
        ("sendgrid", 1e308),
        ("resend", "0001-01-01T00:00:00+14:00"),
        ("mailgun", 10**400),
        ("mailgun", "1e400"),
    ],
    ids=lambda value: str(value)[:24],
)
def test_an_event_time_no_datetime_holds_skips_that_event_not_the_request(
    hooks: tuple[App, TestClient], clock: VirtualClock, provider: str, when: Any
) -> None:
    app, client = hooks
    body, headers = bounce(provider, clock, when=when)
    response = client.post(f"/v1/webhooks/{provider}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["received"] == 0
    assert tracking_rows(app) == [] and suppressed(app) == []


@pytest.mark.parametrize("provider", ["postmark", "sendgrid", "resend", "mailgun"])
def test_ids_that_cannot_be_ours_are_dropped_and_the_bounce_still_counts(
    hooks: tuple[App, TestClient], clock: VirtualClock, provider: str
) -> None:
    app, client = hooks
    body, headers = bounce(
        provider,
        clock,
        delivery_id="²",
        message_id="m" * 300,
        detail="smtp; 550 5.1.1 \x00 no such user",
    )
    response = client.post(f"/v1/webhooks/{provider}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert (response.json()["new"], response.json()["suppressed"]) == (1, 1)
    [row] = tracking_rows(app)
    assert (row.delivery_id, row.provider_message_id) == (None, None)
    assert row.detail is not None and "\x00" not in row.detail and "no such user" in row.detail
    assert suppressed(app) == ["hard_bounce"]


def test_a_delivery_id_beyond_bigint_is_dropped(
    hooks: tuple[App, TestClient], clock: VirtualClock
) -> None:
    app, client = hooks
    body, headers = bounce("postmark", clock, delivery_id="9" * 30)
    assert client.post("/v1/webhooks/postmark", content=body, headers=headers).status_code == 200
    assert [row.delivery_id for row in tracking_rows(app)] == [None]


def test_an_event_id_over_255_characters_is_kept_by_hash_so_redelivery_is_still_one(
    hooks: tuple[App, TestClient], clock: VirtualClock
) -> None:
    app, client = hooks
    at = int((clock.now() - timedelta(minutes=1)).timestamp())
    events = [{"event": "delivered", "email": "ann@example.org", "timestamp": at,
               "sg_event_id": "e" * 300 + suffix} for suffix in ("a", "b")]  # fmt: skip
    body = json.dumps(events).encode()
    for expected_new in (2, 0):
        response = client.post(
            "/v1/webhooks/sendgrid", content=body, headers=signed_request("sendgrid", body, clock)
        )
        assert response.status_code == 200, response.text
        assert response.json()["new"] == expected_new
    assert len({row.raw_id for row in tracking_rows(app)}) == 2


# -- item: SendGrid freshness ----------------------------------------------------------------


def test_a_sendgrid_batch_signed_an_hour_ago_is_refused_and_not_applied(
    hooks: tuple[App, TestClient], clock: VirtualClock
) -> None:
    app, client = hooks
    body, _ = bounce("sendgrid", clock)
    headers = sendgrid_headers(body, str(now_ts(clock) - 3600))
    response = client.post("/v1/webhooks/sendgrid", content=body, headers=headers)
    status, error, message = error_of(response)
    assert (status, error) == (401, "stale_signature")
    assert "sendgrid" in message and "3600 s old" in message
    assert tracking_rows(app) == [] and suppressed(app) == []
    # Signed now, the same batch is applied.
    fresh = sendgrid_headers(body, str(now_ts(clock) - 60))
    assert client.post("/v1/webhooks/sendgrid", content=body, headers=fresh).status_code == 200
    assert suppressed(app) == ["hard_bounce"]


# -- item: Mailgun replay ---------------------------------------------------------------------


def mailgun_post(
    client: TestClient, signature: dict[str, str], recipient: str, kind: str = "complained"
) -> Any:
    """Post ``signature`` with a body of the sender's choosing: Mailgun signs no body."""
    data = {"id": f"mg-{recipient}-{kind}", "event": kind, "recipient": recipient,
            "timestamp": float(signature["timestamp"])}  # fmt: skip
    body = json.dumps({"signature": signature, "event-data": data}).encode()
    return client.post("/v1/webhooks/mailgun", content=body)


def token_rows(app: App) -> list[str]:
    with app.uow() as session:
        return list(session.scalars(select(WebhookToken.token).order_by(WebhookToken.id)))


def test_a_mailgun_signature_block_works_once_then_any_body_with_it_is_406(
    hooks: tuple[App, TestClient], clock: VirtualClock, make_app: AppFactory
) -> None:
    app, client = hooks
    signature = mailgun_signature(str(now_ts(clock) - 30))
    first = mailgun_post(client, signature, "mallory@evil.example", kind="delivered")
    assert first.status_code == 200, first.text
    clock.advance(timedelta(minutes=2))
    replay = mailgun_post(client, signature, "victim@example.org")
    status, error, message = error_of(replay)
    assert (status, error) == (406, "replayed")
    assert "already used" in message
    # Another API process (or this one restarted) shares the memory: it is in the database.
    other = TestClient(create_api(make_app(webhook_secrets={"mailgun": MAILGUN_KEY})))
    assert error_of(mailgun_post(other, signature, "victim@example.org"))[:2] == (406, "replayed")
    assert suppressed(app) == []
    assert [row.kind for row in tracking_rows(app)] == ["delivered"]


@pytest.mark.parametrize(
    ("signed_ago", "words"), [(16 * 60, "960 s old"), (7 * 365 * 86_400, "s old"), (-600, "future")]
)
def test_a_stale_or_future_mailgun_signature_is_406_and_suppresses_nobody(
    hooks: tuple[App, TestClient], clock: VirtualClock, signed_ago: int, words: str
) -> None:
    app, client = hooks
    signature = mailgun_signature(str(now_ts(clock) - signed_ago), token="f" * 50)
    status, error, message = error_of(mailgun_post(client, signature, "victim@example.org"))
    assert (status, error) == (406, "stale_signature")
    assert words in message
    assert suppressed(app) == [] and tracking_rows(app) == [] and token_rows(app) == []


def test_a_fresh_token_is_applied_and_expired_tokens_are_pruned(
    hooks: tuple[App, TestClient], clock: VirtualClock
) -> None:
    app, client = hooks
    first = mailgun_post(client, mailgun_signature(str(now_ts(clock)), "1" * 50), "a@x.org")
    assert first.json()["suppressed"] == 1
    clock.advance(timedelta(minutes=10))
    second = mailgun_post(client, mailgun_signature(str(now_ts(clock)), "2" * 50), "b@x.org")
    assert second.json()["suppressed"] == 1
    assert token_rows(app) == ["1" * 50, "2" * 50]
    clock.advance(timedelta(minutes=15))  # the first token is 25 minutes old: past any window
    third = mailgun_post(client, mailgun_signature(str(now_ts(clock)), "3" * 50), "c@x.org")
    assert third.json()["suppressed"] == 1
    assert token_rows(app) == ["2" * 50, "3" * 50]


def test_0007_goes_down_and_up_again(database_url: str) -> None:
    from sqlalchemy import create_engine, inspect

    def tables() -> set[str]:
        engine = create_engine(database_url)
        try:
            with engine.connect() as connection:
                return set(inspect(connection).get_table_names())
        finally:
            engine.dispose()

    try:
        assert "webhook_tokens" in tables()
        downgrade(database_url, "0006")
        assert "webhook_tokens" not in tables()
    finally:
        upgrade(database_url)
    assert "webhook_tokens" in tables()


# -- item: SNS certificate fetches ------------------------------------------------------------

SNS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_SNS_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
SNS_PEM = (
    x509.CertificateBuilder()
    .subject_name(_SNS_NAME)
    .issuer_name(_SNS_NAME)
    .public_key(SNS_KEY.public_key())
    .serial_number(1)
    .not_valid_before(T0 - timedelta(days=1))
    .not_valid_after(T0 + timedelta(days=365))
    .sign(SNS_KEY, hashes.SHA256())
    .public_bytes(serialization.Encoding.PEM)
)
SNS_CERT = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"


def sns_bounce(cert_url: str, *, forged: bool = False, email: str = "ann@example.org") -> bytes:
    recipients = [{"emailAddress": email, "status": "5.1.1"}]
    ses_event = {
        "eventType": "Bounce",
        "mail": {"messageId": "m-1", "destination": [email]},
        "bounce": {"bounceType": "Permanent", "bouncedRecipients": recipients},
    }
    message = {
        "Type": "Notification",
        "MessageId": f"sns-{email}",
        "TopicArn": SES_TOPIC,
        "Message": json.dumps(ses_event),
        "Timestamp": T0.isoformat(),
    }
    text = "".join(f"{name}\n{message[name]}\n" for name in sorted(message))
    signature = SNS_KEY.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    if forged:
        signature = bytes(len(signature))
    return json.dumps(
        {
            **message,
            "SignatureVersion": "2",
            "SigningCertURL": cert_url,
            "Signature": base64.b64encode(signature).decode(),
        }  # fmt: skip
    ).encode()


def test_sns_certificate_fetches_are_cached_by_path_and_rate_limited(
    hooks: tuple[App, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = hooks
    fetched: list[str] = []

    def aws(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        found = str(request.url) == SNS_CERT
        return httpx.Response(200 if found else 404, content=SNS_PEM if found else b"")

    limited = SnsCertificates(transport=httpx.MockTransport(aws), fetches_per_minute=5)
    monkeypatch.setattr(ses, "CERTIFICATES", limited)
    sns = {"x-amz-sns-message-type": "Notification"}

    genuine = client.post("/v1/webhooks/ses", content=sns_bounce(SNS_CERT), headers=sns)
    assert genuine.status_code == 200, genuine.text
    assert genuine.json()["suppressed"] == 1
    # Forgeries that vary the query string reuse the cached certificate: no new fetch.
    for n in range(30):
        forged = sns_bounce(f"{SNS_CERT}?n={n}", forged=True, email=f"v{n}@example.org")
        response = client.post("/v1/webhooks/ses", content=forged, headers=sns)
        assert error_of(response)[:2] == (401, "bad_signature")
    assert fetched == [SNS_CERT]
    # Forgeries that vary the path: four more downloads this minute, then 503 without fetching.
    statuses = []
    for n in range(30):
        url = f"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-{n}.pem"
        response = client.post("/v1/webhooks/ses", content=sns_bounce(url), headers=sns)
        statuses.append(response.status_code)
    assert statuses == [401] * 4 + [503] * 26
    assert len(fetched) == 5
    status, error, message = error_of(response)
    assert (status, error) == (503, "try_later") and "certificates" in message
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # A genuine message whose certificate is cached still goes through meanwhile.
    again = client.post(
        "/v1/webhooks/ses", content=sns_bounce(SNS_CERT, email="bob@example.org"), headers=sns
    )
    assert again.status_code == 200 and again.json()["suppressed"] == 1
    assert sorted(suppressed(app)) == ["hard_bounce", "hard_bounce"]


def test_a_signed_sns_subscription_confirmation_answers_its_url_and_applies_nothing(
    hooks: tuple[App, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = hooks
    monkeypatch.setattr(
        ses, "CERTIFICATES", SnsCertificates(transport=httpx.MockTransport(
            lambda request: httpx.Response(200, content=SNS_PEM)))
    )  # fmt: skip
    url = f"https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={SES_TOPIC}"
    message = {"Type": "SubscriptionConfirmation", "MessageId": "sub-1", "Token": "2336412f37",
               "TopicArn": SES_TOPIC, "Message": "You have chosen to subscribe.",
               "SubscribeURL": url, "Timestamp": T0.isoformat()}  # fmt: skip
    text = "".join(f"{name}\n{message[name]}\n" for name in sorted(message))
    signature = SNS_KEY.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    body = json.dumps({**message, "SignatureVersion": "2", "SigningCertURL": SNS_CERT,
                       "Signature": base64.b64encode(signature).decode()}).encode()  # fmt: skip
    headers = {"x-amz-sns-message-type": "SubscriptionConfirmation"}
    response = client.post("/v1/webhooks/ses", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "confirm", "subscribe_url": url}
    assert tracking_rows(app) == []
    # The same body with its signature broken is refused, not confirmed.
    forged = json.dumps({**json.loads(body), "Signature": base64.b64encode(bytes(256)).decode()})
    response = client.post("/v1/webhooks/ses", content=forged.encode(), headers=headers)
    assert error_of(response)[:2] == (401, "bad_signature")


def test_lone_surrogates_are_dropped_or_replaced_not_a_500(
    hooks: tuple[App, TestClient], clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = hooks
    body, headers = bounce(
        "postmark", clock, message_id="pm-\udfff", detail="smtp; 550 5.1.1 \ud800 unknown"
    )
    response = client.post("/v1/webhooks/postmark", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["suppressed"] == 1
    [row] = tracking_rows(app)
    assert row.provider_message_id is None
    assert row.detail is not None and row.detail.endswith("smtp; 550 5.1.1 \ufffd unknown")
    body, headers = bounce("postmark", clock, email="bob\ud800@example.org")
    response = client.post("/v1/webhooks/postmark", content=body, headers=headers)
    assert (response.status_code, response.json()["received"]) == (200, 0)
    # SNS reads the envelope before it can verify anything: a surrogate there is a bad signature.
    monkeypatch.setattr(
        ses, "CERTIFICATES", SnsCertificates(transport=httpx.MockTransport(
            lambda request: httpx.Response(200, content=SNS_PEM)))
    )  # fmt: skip
    envelope = json.loads(sns_bounce(SNS_CERT))
    forged = json.dumps({**envelope, "Message": "\ud800"}).encode()
    sns = {"x-amz-sns-message-type": "Notification"}
    response = client.post("/v1/webhooks/ses", content=forged, headers=sns)
    assert error_of(response)[:2] == (401, "bad_signature")
