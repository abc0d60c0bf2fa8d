"""Resend as Resend defines it.

- every ``POST /emails/batch`` our adapter builds (headers and body) is validated with
  openapi-core against Resend's own OpenAPI document (resend/resend-openapi ``resend.json``,
  trimmed to ``/emails/batch`` and the ``email.*`` webhooks);
- a webhook payload for every ``email.*`` event the spec defines is first checked against the
  spec's webhook schema, then signed with the official ``svix`` library and fed through our
  verifier and parser;
- answers: the spec's 200 batch response, the permissive partial failure, and the error
  answers of Resend's error reference (written here from its facts: name, status, message).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.unmarshalling.request.unmarshallers import V31WebhookRequestBodyUnmarshaller
from svix.webhooks import Webhook

from remarket_mailer.delivery.base import (
    OutboundMessage,
    Permanent,
    ProviderFault,
    SendResult,
    Sent,
    Transient,
)
from remarket_mailer.delivery.providers.resend import ResendProvider
from remarket_mailer.tracking.events import WebhookSignatureError
from remarket_mailer.tracking.resend import parse_webhook
from tests.contract.support import (
    ALL_MESSAGES,
    Recorder,
    as_openapi_request,
    openapi,
    spec_errors,
    vendored_json,
)

SPEC = ("resend-openapi", "resend.json")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# The description of Tag.name and Tag.value in the spec: "It can only contain ASCII letters
# (a–z, A–Z), numbers (0–9), underscores (_), or dashes (-). It can contain no more than 256
# characters." The schema itself says only "string", so the rule is checked here.
TAG_TEXT = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _batch_response(request: httpx.Request) -> httpx.Response:
    count = len(json.loads(request.content))
    return httpx.Response(200, json={"data": [{"id": str(uuid.uuid4())} for _ in range(count)]})


def sent_request(messages: list[OutboundMessage]) -> httpx.Request:
    rec = Recorder(_batch_response)
    provider = ResendProvider("re_test_key", transport=rec.transport)
    results = provider.send_many(messages)
    assert all(isinstance(r, Sent) for r in results), results
    return rec.only()


@pytest.mark.parametrize("name", sorted(ALL_MESSAGES))
def test_batch_request_satisfies_resends_openapi(name: str) -> None:
    request = sent_request([ALL_MESSAGES[name]])
    result = openapi(*SPEC).unmarshal_request(as_openapi_request(request))
    assert spec_errors(result.errors) == []
    for tag in result.body[0]["tags"]:
        assert TAG_TEXT.fullmatch(tag["name"]), tag
        assert TAG_TEXT.fullmatch(tag["value"]), tag


def test_one_batch_of_every_message_satisfies_the_spec() -> None:
    request = sent_request(list(ALL_MESSAGES.values()))
    result = openapi(*SPEC).unmarshal_request(as_openapi_request(request))
    assert spec_errors(result.errors) == []
    assert len(result.body) == len(ALL_MESSAGES)
    # The operation's Idempotency-Key parameter (maxLength 256) is part of the check above.
    assert 0 < len(request.headers["Idempotency-Key"]) <= 256


def test_a_wrong_batch_is_refused_by_the_spec() -> None:
    """The check itself can fail: an item without ``subject`` does not pass."""
    request = sent_request([ALL_MESSAGES["full"]])
    body = json.loads(request.content)
    del body[0]["subject"]
    broken = httpx.Request(
        "POST", request.url, headers=request.headers, content=json.dumps(body).encode()
    )
    assert openapi(*SPEC).unmarshal_request(as_openapi_request(broken)).errors


# -- answers -----------------------------------------------------------------------------------


def _send(response: httpx.Response, count: int = 1) -> list[SendResult]:
    provider = ResendProvider("re_test_key", transport=httpx.MockTransport(lambda r: response))
    # In delivery id order: the order the plan puts a chunk's items in the request.
    messages = sorted(ALL_MESSAGES.values(), key=lambda m: m.delivery_id)[:count]
    return provider.send_many(messages)


def test_success_answer_matches_the_spec_and_gives_the_ids_in_order() -> None:
    body = {
        "data": [
            {"id": "ae2014de-c168-4c61-8267-70d2662a1ce1"},
            {"id": "faccb7a5-8a28-4e9a-ac64-8da1cc3bc1cb"},
        ]
    }
    request = as_openapi_request(sent_request([ALL_MESSAGES["full"]]))
    checked = openapi(*SPEC).unmarshal_response(
        request, MockResponse(json.dumps(body).encode(), 200)
    )
    assert spec_errors(checked.errors) == []
    assert _send(httpx.Response(200, json=body), 2) == [
        Sent("ae2014de-c168-4c61-8267-70d2662a1ce1"),
        Sent("faccb7a5-8a28-4e9a-ac64-8da1cc3bc1cb"),
    ]


def test_permissive_partial_failure_fails_only_the_invalid_item() -> None:
    # Resend's batch-validation docs: with x-batch-validation: permissive the valid emails are
    # sent and listed in data; the invalid ones are listed in errors by request index.
    body = {
        "data": [
            {"id": "ae2014de-c168-4c61-8267-70d2662a1ce1"},
            {"id": "faccb7a5-8a28-4e9a-ac64-8da1cc3bc1cb"},
        ],
        "errors": [{"index": 1, "message": "The `to` field must be a `string`."}],
    }
    results = _send(httpx.Response(200, json=body), 3)
    assert results[0] == Sent("ae2014de-c168-4c61-8267-70d2662a1ce1")
    assert isinstance(results[1], Permanent) and not results[1].hard_bounce
    assert results[2] == Sent("faccb7a5-8a28-4e9a-ac64-8da1cc3bc1cb")


def _error(status: int, name: str, message: str, **headers: str) -> httpx.Response:
    # Resend's error reference: {"statusCode", "name", "message"}.
    return httpx.Response(
        status, json={"statusCode": status, "name": name, "message": message}, headers=headers
    )


def test_rate_limited_is_retried_after_the_given_seconds() -> None:
    response = _error(429, "rate_limit_exceeded", "Too many requests.", **{"retry-after": "2"})
    [result] = _send(response)
    assert isinstance(result, Transient) and result.retry_after == 2.0


def test_daily_quota_is_retried_not_failed() -> None:
    # The account's quota, not the message: the provider pauses and the message is kept.
    [result] = _send(_error(429, "daily_quota_exceeded", "You have reached your daily quota."))
    assert isinstance(result, ProviderFault) and result.reason == "quota"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("application_error", "An unexpected error occurred."),
        ("internal_server_error", "An unexpected error occurred."),
    ],
)
def test_server_errors_are_retried(name: str, message: str) -> None:
    [result] = _send(_error(500, name, message))
    assert isinstance(result, Transient)


def test_invalid_address_fails_the_message_without_suppressing() -> None:
    # 422 validation_error names the request's problem, not a mailbox that bounced.
    [result] = _send(_error(422, "validation_error", "Invalid `to` field."))
    assert isinstance(result, Permanent) and not result.hard_bounce


def test_invalid_api_key_account_error_suppresses_no_one() -> None:
    [result] = _send(_error(403, "invalid_api_key", "API key is invalid"))
    assert not (isinstance(result, Permanent) and result.hard_bounce)


# -- webhooks: spec-shaped payloads, signed by svix ---------------------------------------------

CREATED = "2026-11-02T09:00:00.000Z"
SENT_AT = datetime(2026, 11, 2, 9, 0, 5, tzinfo=UTC)


def _data(**extra: Any) -> dict[str, Any]:
    return {
        "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
        "created_at": CREATED,
        "from": "Shop <news@mail.shop.example>",
        "to": ["ann17@example.org"],
        "subject": "You left something",
        "tags": {"delivery_id": "17", "workflow": "abandoned_cart"},
        **extra,
    }


_BOUNCE = {
    "diagnosticCode": ["smtp; 550 5.1.1 user unknown"],
    "message": "The mailbox does not exist.",
    "subType": "General",
    "type": "Permanent",
}
_SOFT = {
    "diagnosticCode": ["smtp; 452 4.2.2 mailbox full"],
    "message": "The mailbox is full.",
    "subType": "MailboxFull",
    "type": "Transient",
}
_CLICK = {
    "ipAddress": "203.0.113.7",
    "link": "https://shop.example/cart",
    "timestamp": CREATED,
    "userAgent": "Mozilla/5.0",
}


def _suppressed(reason: str) -> dict[str, Any]:
    return {
        "diagnosticCode": [],
        "message": "The address is on the suppression list.",
        "reason": reason,
        "type": "OnAccountSuppressionList",
    }


# Resend never sent it (quota, key, domain): recorded as a failure of the delivery that
# suppresses no one, as a "failed" event where the vocabulary has one, else a policy bounce.
NEVER_SENT = (("failed", None), ("bounced", "policy"))

# (case, event type, data, expected (kind, bounce class), NEVER_SENT, or None for "no event")
WEBHOOKS: list[tuple[str, str, dict[str, Any], Any]] = [
    ("sent", "email.sent", _data(), None),
    ("scheduled", "email.scheduled", _data(), None),
    ("delivered", "email.delivered", _data(), ("delivered", None)),
    ("delivery_delayed", "email.delivery_delayed", _data(), ("deferred", None)),
    ("bounced-permanent", "email.bounced", _data(bounce=_BOUNCE), ("bounced", "hard")),
    ("bounced-transient", "email.bounced", _data(bounce=_SOFT), ("bounced", "soft")),
    ("complained", "email.complained", _data(), ("complained", None)),
    ("opened", "email.opened", _data(), ("opened", None)),
    ("clicked", "email.clicked", _data(click=_CLICK), ("clicked", None)),
    (
        "failed",
        "email.failed",
        _data(failed={"reason": "reached_daily_quota"}),
        NEVER_SENT,
    ),
    (
        "suppressed-bounce",
        "email.suppressed",
        _data(suppressed=_suppressed("previous_bounce")),
        ("bounced", "hard"),
    ),
    (
        "suppressed-complaint",
        "email.suppressed",
        _data(suppressed=_suppressed("previous_complaint")),
        ("complained", None),
    ),
]


class _WebhookRequest(MockRequest):
    def __init__(self, name: str, body: bytes) -> None:
        super().__init__("https://hooks.shop.example", "post", "/v1/webhooks/resend", data=body)
        self.name = name


def _signed(body: bytes) -> dict[str, str]:
    msg_id = f"msg_{uuid.uuid4().hex}"
    signature = Webhook(SECRET).sign(msg_id, SENT_AT, body.decode("utf-8"))
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(SENT_AT.timestamp())),
        "svix-signature": signature,
    }


def test_every_email_event_of_the_spec_is_covered() -> None:
    spec_events = {name for name in vendored_json(*SPEC)["webhooks"] if name.startswith("email.")}
    assert spec_events - {"email.received"} == {kind for _, kind, _, _ in WEBHOOKS}


@pytest.mark.parametrize(
    ("case", "kind", "data", "expected"), WEBHOOKS, ids=[w[0] for w in WEBHOOKS]
)
def test_signed_webhook_of_the_spec_parses(
    case: str, kind: str, data: dict[str, Any], expected: Any
) -> None:
    body = json.dumps({"type": kind, "created_at": CREATED, "data": data}).encode()
    # The body only: Resend's spec puts bearerAuth on everything, webhooks are Svix-signed.
    checked = V31WebhookRequestBodyUnmarshaller(openapi(*SPEC).spec).unmarshal(
        _WebhookRequest(kind, body)
    )
    assert spec_errors(checked.errors) == [], "the payload is not what Resend's spec defines"

    events = parse_webhook(_signed(body), body, SECRET, now=SENT_AT.timestamp())

    if expected is None:
        assert events == []
        return
    [event] = events
    if expected is NEVER_SENT:
        assert (event.kind, event.bounce_class) in NEVER_SENT
        assert "reached_daily_quota" in (event.detail or "")
    else:
        assert (event.kind, event.bounce_class) == expected
    assert event.email == "ann17@example.org"
    assert event.delivery_id == "17"
    assert event.provider_message_id == "56761188-7520-42d8-8898-ff6fc54ce618"
    # The click's client is kept to tell people from machines in the report.
    assert event.user_agent == ("Mozilla/5.0" if kind == "email.clicked" else None)


def test_svix_signature_over_another_body_is_refused() -> None:
    body = json.dumps({"type": "email.delivered", "created_at": CREATED, "data": _data()})
    headers = _signed(body.encode())
    tampered = body.replace("ann17@", "eve@").encode()
    with pytest.raises(WebhookSignatureError):
        parse_webhook(headers, tampered, SECRET, now=SENT_AT.timestamp())


def test_svix_signature_from_another_secret_is_refused() -> None:
    body = json.dumps({"type": "email.delivered", "created_at": CREATED, "data": _data()}).encode()
    with pytest.raises(WebhookSignatureError):
        parse_webhook(_signed(body), body, "whsec_" + "QUJD" * 8, now=SENT_AT.timestamp())


def test_a_payload_the_spec_does_not_define_is_refused_by_the_check() -> None:
    """The schema check itself can fail: a bounce type Resend does not define does not pass."""
    data = _data(bounce={**_BOUNCE, "type": "Hard"})
    body = json.dumps({"type": "email.bounced", "created_at": CREATED, "data": data}).encode()
    checked = V31WebhookRequestBodyUnmarshaller(openapi(*SPEC).spec).unmarshal(
        _WebhookRequest("email.bounced", body)
    )
    assert checked.errors
