"""SendGrid as SendGrid defines it.

- every Mail Send request our adapter builds is validated with openapi-core against SendGrid's
  own OpenAPI document (twilio/sendgrid-oai ``tsg_mail_v3.json``, trimmed to ``/v3/mail/send``);
- the Event Webhook signature vector of the official SDK (sendgrid-python's
  ``test_eventwebhook.py``: public key, payload, signature, timestamp, and its bad key, bad
  payload, bad signature and bad timestamp cases) goes through our verifier and parser;
- the error answers documented in the spec (400, 401, 403, 404, 405, 413, 500), 202 and a 429
  written from SendGrid's rate-limit docs go through our response mapping.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from openapi_core.testing import MockResponse

from remarket_mailer.delivery.base import OutboundMessage, Permanent, SendResult, Sent, Transient
from remarket_mailer.delivery.providers.sendgrid import SendGridProvider
from remarket_mailer.tracking.events import WebhookSignatureError
from remarket_mailer.tracking.sendgrid import parse_webhook
from tests.contract.support import (
    ALL_MESSAGES,
    Recorder,
    as_openapi_request,
    openapi,
    spec_errors,
    vendored_json,
)

SPEC = ("sendgrid-oai", "tsg_mail_v3.json")
VECTOR = vendored_json("sendgrid-python", "eventwebhook_vector.json")


def sent_request(message: OutboundMessage) -> httpx.Request:
    rec = Recorder(lambda r: httpx.Response(202, headers={"X-Message-Id": "sg-1"}))
    provider = SendGridProvider("SG.test-key", transport=rec.transport, concurrency=1)
    assert provider.send_many([message]) == [Sent("sg-1")]
    return rec.only()


@pytest.mark.parametrize("name", sorted(ALL_MESSAGES))
def test_mail_send_request_satisfies_sendgrids_openapi(name: str) -> None:
    request = sent_request(ALL_MESSAGES[name])
    result = openapi(*SPEC).unmarshal_request(as_openapi_request(request))
    assert spec_errors(result.errors) == []
    # What SendGrid will read back out of it: our id in custom_args, one recipient.
    body = result.body
    assert body["personalizations"][0]["custom_args"]["delivery_id"] == str(
        ALL_MESSAGES[name].delivery_id
    )
    assert len(body["personalizations"][0]["to"]) == 1


def test_a_wrong_body_is_refused_by_the_spec() -> None:
    """The check itself can fail: a body without ``from`` does not pass."""
    request = sent_request(ALL_MESSAGES["full"])
    body = json.loads(request.content)
    del body["from"]
    broken = httpx.Request(
        "POST", request.url, headers=request.headers, content=json.dumps(body).encode()
    )
    assert openapi(*SPEC).unmarshal_request(as_openapi_request(broken)).errors


# -- Event Webhook signature: the official SDK's vector ----------------------------------------


def _headers(signature: str, timestamp: str) -> dict[str, str]:
    return {
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


SIGNED_AT = float(VECTOR["timestamp"])


def test_event_webhook_vector_verifies_and_parses() -> None:
    events = parse_webhook(
        _headers(VECTOR["signature"], VECTOR["timestamp"]),
        VECTOR["payload"].encode("utf-8"),
        VECTOR["public_key"],
        now=SIGNED_AT,
    )
    assert len(events) == 1
    event = events[0]
    # "dropped" / "Bounced Address": SendGrid refused an address that bounced before.
    assert (event.kind, event.bounce_class) == ("bounced", "hard")
    assert event.email == "hello@world.com"
    assert event.provider_message_id == "LRzXl_NHStOGhQ4kofSm_A"
    assert event.raw_id == "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA"


@pytest.mark.parametrize(
    ("case", "key", "payload", "signature", "timestamp"),
    [
        ("bad key", "other_public_key", "payload", "signature", "timestamp"),
        ("bad payload", "public_key", None, "signature", "timestamp"),
        ("bad signature", "public_key", "payload", "other_signature", "timestamp"),
        ("bad timestamp", "public_key", "payload", "signature", None),
    ],
)
def test_event_webhook_vector_refuses_what_the_sdk_refuses(
    case: str, key: str, payload: str | None, signature: str, timestamp: str | None
) -> None:
    body = VECTOR[payload] if payload else "payload"
    stamp = VECTOR[timestamp] if timestamp else "timestamp"
    with pytest.raises(WebhookSignatureError):
        parse_webhook(
            _headers(VECTOR[signature], stamp),
            body.encode("utf-8"),
            VECTOR[key],
            now=SIGNED_AT,
        )


# -- answers -----------------------------------------------------------------------------------


def _documented_error(status: int) -> dict[str, object]:
    """The example body SendGrid's spec gives for ``status`` on POST /v3/mail/send."""
    spec = vendored_json(*SPEC)
    response = spec["components"]["responses"][f"PostMailSend{status}"]
    examples = response["content"]["application/json"]["examples"]
    value: dict[str, object] = next(iter(examples.values()))["value"]
    return value


def _answer(response: httpx.Response) -> SendResult:
    provider = SendGridProvider(
        "SG.test-key", transport=httpx.MockTransport(lambda r: response), concurrency=1
    )
    return provider.send_many([ALL_MESSAGES["full"]])[0]


def test_documented_error_bodies_match_the_spec() -> None:
    """Our fixtures below are the spec's own examples, valid against its response schema."""
    request = as_openapi_request(sent_request(ALL_MESSAGES["full"]))
    for status in (400, 401, 403, 404, 405, 413, 500):
        body = json.dumps(_documented_error(status)).encode()
        result = openapi(*SPEC).unmarshal_response(request, MockResponse(body, status))
        assert spec_errors(result.errors) == [], status


def test_accepted_is_sent_with_the_message_id() -> None:
    result = _answer(httpx.Response(202, headers={"X-Message-Id": "LRzXl_NHStOGhQ4kofSm_A"}))
    assert result == Sent("LRzXl_NHStOGhQ4kofSm_A")


@pytest.mark.parametrize("status", [400, 404, 405, 413])
def test_documented_request_errors_fail_the_message_without_suppressing(status: int) -> None:
    result = _answer(httpx.Response(status, json=_documented_error(status)))
    assert isinstance(result, Permanent)
    assert not result.hard_bounce


def test_documented_401_account_error_suppresses_no_one() -> None:
    """401 "authorization required": the key was refused, which says nothing about anyone."""
    result = _answer(httpx.Response(401, json=_documented_error(401)))
    assert not (isinstance(result, Permanent) and result.hard_bounce)


def test_documented_403_account_error_suppresses_no_one() -> None:
    """403 "access forbidden" is about the key or account, not the recipient."""
    result = _answer(httpx.Response(403, json=_documented_error(403)))
    assert not (isinstance(result, Permanent) and result.hard_bounce)


def test_documented_500_is_retried() -> None:
    result = _answer(httpx.Response(500, json=_documented_error(500)))
    assert isinstance(result, Transient)


def test_429_waits_for_the_rate_limit_reset() -> None:
    # SendGrid's rate-limit docs: 429 with {"errors":[{"field":null,"message":"too many
    # requests"}]} and X-RateLimit-Reset in epoch seconds.

    reset = int(time.time()) + 60
    result = _answer(
        httpx.Response(
            429,
            json={"errors": [{"field": None, "message": "too many requests"}]},
            headers={
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            },
        )
    )
    assert isinstance(result, Transient)
    assert result.retry_after is not None and 50 <= result.retry_after <= 60
