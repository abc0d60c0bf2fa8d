"""Mailgun as Mailgun documents it.

- every ``/messages`` form our adapter builds uses only the parameters of the documented table
  (mailgun/documentation ``api-sending.rst``), and keeps its limits (ASCII header names,
  sending options within 16 kB, at least one of text/html);
- the webhook signature vector of Mailgun's official PHP SDK tests (mailgun-php
  ``WebhookTest.php``) goes through our verifier, good and bad;
- every documented event sample (``api-events.rst``: delivered, failed permanent, delayed
  bounce, failed temporary, opened, clicked, unsubscribed, complained) is posted as a signed
  webhook and fed through our parser; the suppress-* reasons of Mailgun's stats reference on
  the documented permanent-failure sample;
- the documented ``/messages`` answers (the error-code table, the sample 200) go through our
  response mapping.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from remarket_mailer.delivery.base import OutboundMessage, Permanent, SendResult, Sent, Transient
from remarket_mailer.delivery.providers.mailgun import MailgunProvider
from remarket_mailer.tracking.events import EventKind, WebhookSignatureError
from remarket_mailer.tracking.mailgun import parse_webhook
from tests.contract.support import ALL_MESSAGES, VENDOR, Recorder, vendored_json

DOCS = "mailgun-documentation"
VECTOR = vendored_json("mailgun-php", "webhook_signature.json")
SIGNED_AT = float(VECTOR["timestamp"])
PARAMETERS = vendored_json(DOCS, "send_parameters.json")["parameters"]
ERRORS: list[dict[str, Any]] = vendored_json(DOCS, "send_errors.json")["errors"]


def sent_form(message: OutboundMessage) -> list[tuple[str, str]]:
    rec = Recorder(
        lambda r: httpx.Response(
            200,
            json={"message": "Queued. Thank you.", "id": "<20111114174239.25659.5817@mg.example>"},
        )
    )
    provider = MailgunProvider("key-test", "mg.example", transport=rec.transport, concurrency=1)
    assert provider.send_many([message]) == [Sent("20111114174239.25659.5817@mg.example")]
    request = rec.only()
    assert request.url.path == "/v3/mg.example/messages"
    return parse_qsl(request.content.decode("ascii"), keep_blank_values=True)


def _documented(name: str) -> bool:
    if name in PARAMETERS:
        return True
    # "h:X-My-Header" and "v:my-var" stand for any header and any variable.
    return name.startswith(("h:", "v:")) and len(name) > 2


@pytest.mark.parametrize("name", sorted(ALL_MESSAGES))
def test_messages_form_uses_only_documented_parameters(name: str) -> None:
    form = sent_form(ALL_MESSAGES[name])
    undocumented = [key for key, _ in form if not _documented(key)]
    assert undocumented == []
    keys = [key for key, _ in form]
    assert keys.count("from") == 1 and keys.count("to") == 1
    assert "text" in keys or "html" in keys
    # "Header name must be pure ASCII"; "Send options (o:, h:, v:) are limited to 16 kB total".
    assert all(key.isascii() for key in keys if key.startswith("h:"))
    options = sum(len(k) + len(v.encode()) for k, v in form if k[:2] in ("o:", "h:", "v:"))
    assert options <= 16 * 1024
    assert dict(form)["v:delivery_id"] == str(ALL_MESSAGES[name].delivery_id)


def test_the_parameter_check_can_fail() -> None:
    assert not _documented("o:tags") and not _documented("h:") and not _documented("headers")


# -- webhook signature: the official SDK's vector ----------------------------------------------


def _webhook(event_data: dict[str, Any], token: str | None = None, **signature: str) -> bytes:
    block = {
        "timestamp": VECTOR["timestamp"],
        "token": token or VECTOR["token"],
        "signature": VECTOR["signature"],
        **signature,
    }
    return json.dumps({"signature": block, "event-data": event_data}).encode()


def _sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VENDOR / DOCS / "events" / f"{name}.json").read_text())
    return data


def test_signature_vector_verifies() -> None:
    [event] = parse_webhook(
        {}, _webhook(_sample("delivered")), VECTOR["signing_key"], now=SIGNED_AT
    )
    assert event.kind == "delivered"


def test_signature_vector_with_another_token_is_refused() -> None:
    body = _webhook(_sample("delivered"), token=VECTOR["bad_token"])
    with pytest.raises(WebhookSignatureError):
        parse_webhook({}, body, VECTOR["signing_key"], now=SIGNED_AT)


def test_signature_vector_with_another_key_is_refused() -> None:
    with pytest.raises(WebhookSignatureError):
        parse_webhook({}, _webhook(_sample("delivered")), "key-another", now=SIGNED_AT)


def test_empty_signature_is_refused() -> None:
    body = json.dumps(
        {
            "signature": {"timestamp": "0", "token": "", "signature": ""},
            "event-data": _sample("delivered"),
        }
    ).encode()
    with pytest.raises(WebhookSignatureError):
        parse_webhook({}, body, VECTOR["signing_key"], now=SIGNED_AT)


# -- the documented event samples --------------------------------------------------------------

# sample -> (kind, bounce class, recipient, message id)
SAMPLES: dict[str, tuple[EventKind, str | None, str, str]] = {
    "delivered": (
        "delivered",
        None,
        "john@example.com",
        "20180622182958.1.48906CB188F1A454@exmple.org",
    ),
    "failed-permanent": (
        "bounced",
        "hard",
        "slava@mailgun.com",
        "20180622211249.1.2A6098970A380E12@example.org",
    ),
    "failed-permanent-delayed-bounce": (
        "bounced",
        "hard",
        "christest123@test.com",
        "20221019211537.93011d31ea99c5a8@test.com",
    ),
    "failed-temporary": (
        "deferred",
        None,
        "test@test.com",
        "20221006142837.1618e01bf42da9fa@test.com",
    ),
    "opened": (
        "opened",
        None,
        "recipient@example.com",
        "20130821005614.19826.35976@samples.mailgun.org",
    ),
    "clicked": (
        "clicked",
        None,
        "recipient@example.com",
        "20130821085807.30688.67706@samples.mailgun.org",
    ),
    "unsubscribed": (
        "unsubscribed",
        None,
        "recipient@example.com",
        "20130822232216.13966.79700@samples.mailgun.org",
    ),
    "complained": ("complained", None, "foo@example.com", "20130718032413.263EE2E0926@example.com"),
}


def test_every_vendored_sample_is_checked() -> None:
    assert {p.stem for p in (VENDOR / DOCS / "events").glob("*.json")} == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_documented_event_sample_parses(name: str) -> None:
    sample = _sample(name)
    events = parse_webhook({}, _webhook(sample), VECTOR["signing_key"], now=SIGNED_AT)
    kind, bounce_class, recipient, message_id = SAMPLES[name]
    [event] = events
    assert (event.kind, event.bounce_class) == (kind, bounce_class)
    assert event.email == recipient
    assert event.provider_message_id == message_id
    assert event.raw_id == f"{sample['id']}:{sample['timestamp']}"
    if kind == "clicked":
        assert event.detail == "http://example.com/signup"
    if kind in ("opened", "clicked"):  # kept to tell people from machines in the report
        assert event.user_agent == sample["client-info"]["user-agent"]
    else:
        assert event.user_agent is None


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("suppress-bounce", "bounced"),
        ("suppress-unsubscribe", "unsubscribed"),
        ("suppress-complaint", "complained"),
    ],
)
def test_suppress_reasons_keep_what_the_recipient_did(reason: str, kind: str) -> None:
    """Mailgun's stats reference names the permanent failures "suppress-bounce / -unsubscribe
    / -complaint": recipients previously bounced / unsubscribed / complained. The documented
    permanent-failure sample, with each of those reasons."""
    sample = copy.deepcopy(_sample("failed-permanent"))
    sample["reason"] = reason
    [event] = parse_webhook({}, _webhook(sample), VECTOR["signing_key"], now=SIGNED_AT)
    assert event.kind == kind
    assert event.bounce_class == ("hard" if kind == "bounced" else None)


# -- answers -----------------------------------------------------------------------------------


def _send(response: httpx.Response) -> SendResult:
    provider = MailgunProvider(
        "key-test", "example.com", transport=httpx.MockTransport(lambda r: response), concurrency=1
    )
    return provider.send_many([ALL_MESSAGES["full"]])[0]


def _documented_errors(status: int) -> list[str]:
    return [row["message"] for row in ERRORS if row["status"] == status]


def test_the_error_table_is_all_there() -> None:
    assert {row["status"] for row in ERRORS} == {400, 401, 403, 404, 413, 429, 500}


def test_documented_success_is_sent_with_the_bare_id() -> None:
    body = {
        "message": "Queued. Thank you.",
        "id": "<20111114174239.25659.5817@samples.mailgun.org>",
    }
    assert _send(httpx.Response(200, json=body)) == Sent(
        "20111114174239.25659.5817@samples.mailgun.org"
    )


@pytest.mark.parametrize("message", _documented_errors(400) + _documented_errors(413))
def test_documented_request_errors_fail_without_suppressing(message: str) -> None:
    status = next(row["status"] for row in ERRORS if row["message"] == message)
    result = _send(httpx.Response(status, json={"message": message}))
    # Each is about the request or the domain, none says the recipient's mailbox is bad.
    assert not (isinstance(result, Permanent) and result.hard_bounce)
    if "not allowed to send" not in message:
        assert isinstance(result, Permanent)


@pytest.mark.parametrize(
    "message", _documented_errors(401) + _documented_errors(403) + _documented_errors(404)
)
def test_documented_account_errors_suppress_no_one(message: str) -> None:
    status = next(row["status"] for row in ERRORS if row["message"] == message)
    result = _send(httpx.Response(status, json={"message": message}))
    assert not (isinstance(result, Permanent) and result.hard_bounce)


@pytest.mark.parametrize("message", _documented_errors(429))
def test_documented_rate_limits_wait_until_the_named_time(message: str) -> None:
    result = _send(httpx.Response(429, json={"message": message}))
    assert isinstance(result, Transient)
    # "try again after Mon, 20 Dec 2021 20:33:21 UTC": in the past now, so no wait is left.
    assert result.retry_after == 0.0


def test_documented_rate_limit_in_the_future_is_waited_for() -> None:
    message = "Domain example.com is not allowed to send: request limit exceeded, try again after "
    result = _send(httpx.Response(429, json={"message": message + "Mon, 20 Dec 2100 20:33:21 UTC"}))
    assert isinstance(result, Transient) and result.retry_after is not None
    assert result.retry_after > 365 * 24 * 3600


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(status: int) -> None:
    result = _send(httpx.Response(status, json={"message": "Internal Server Error"}))
    assert isinstance(result, Transient)
