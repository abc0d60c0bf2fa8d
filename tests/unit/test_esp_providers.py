"""HTTP ESP providers: exact requests on the wire and the mapping of every answer to a result.

No network: every provider runs on ``httpx.MockTransport``.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.delivery.base import (
    KeyConflict,
    OutboundMessage,
    Permanent,
    ProviderFault,
    SendResult,
    Sent,
    Transient,
)
from remarket_mailer.delivery.providers.aws import AwsCredentials, sigv4_sign
from remarket_mailer.delivery.providers.esp import esp_provider_from_url
from remarket_mailer.delivery.providers.http_base import parse_retry_after
from remarket_mailer.delivery.providers.mailgun import MailgunProvider
from remarket_mailer.delivery.providers.postmark import PostmarkProvider
from remarket_mailer.delivery.providers.resend import ResendProvider, batch_idempotency_key
from remarket_mailer.delivery.providers.sendgrid import SendGridProvider
from remarket_mailer.delivery.providers.ses import SesProvider
from remarket_mailer.errors import ConfigError

UNSUBSCRIBE = "<https://u.shop.example/u/tok>, <mailto:unsub@shop.example?subject=tok>"
ONE_CLICK = "List-Unsubscribe=One-Click"

Handler = Callable[[httpx.Request], httpx.Response]


def message(delivery_id: int = 17, **changes: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "delivery_id": delivery_id,
        "message_id": f"{delivery_id}.abc@mail.shop.example",
        "from_addr": "Shop <news@mail.shop.example>",
        "to_addr": f"Ann Example <ann{delivery_id}@example.org>",
        "subject": "You left something",
        "html": "<p>Hi</p>",
        "text": "Hi",
        "reply_to": "help@shop.example",
        "headers": {"List-Unsubscribe": UNSUBSCRIBE, "List-Unsubscribe-Post": ONE_CLICK},
        "tags": {
            "delivery_id": str(delivery_id),
            "workflow": "abandoned_cart",
            "step": "reminder_2",
        },
    }
    values.update(changes)
    return OutboundMessage(**values)


class Recorder:
    """A MockTransport handler that keeps every request it saw."""

    def __init__(self, respond: Handler) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        return self.respond(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def only(self) -> httpx.Request:
        assert len(self.requests) == 1
        return self.requests[0]


def body_json(request: httpx.Request) -> Any:
    return json.loads(request.content)


def raise_(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


# -- shared helpers --------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_800_000_000.0
    in_90s = format_datetime(datetime.fromtimestamp(now + 90, tz=UTC), usegmt=True)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(in_90s, now=now) == pytest.approx(90.0)
    assert parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


_address_chars = st.sampled_from(list("aZ09.-_+'!#%&*/=?^`{|}~ <>@\"(),:;[]\\\t\né"))
_addresses = st.one_of(
    st.text(_address_chars, max_size=30),
    st.builds(
        "{}{}@{}".format,
        st.sampled_from(["", "Ann Lee <", "Ann  Lee <", "A.B <", "Shop <", '"Shop" <']),
        st.text(_address_chars, min_size=1, max_size=12)
        | st.text(st.sampled_from(list("aZ9.-_+'")), min_size=1, max_size=8),
        st.sampled_from(["shop.example", "x.org", "x", "a..b", "-a.b", "b.c>", "b.c> ", "b.c>x"]),
    ),
)


@given(_addresses)
def test_plain_addresses_split_as_parseaddr_splits_them(value: str) -> None:
    """The shortcut for plain addresses gives what the full parse gives, or leaves it to it."""
    import email.utils

    from remarket_mailer.delivery.message import clean_header
    from remarket_mailer.delivery.providers.http_base import split_address

    name, address = email.utils.parseaddr(clean_header(value))
    if not address or "@" not in address:
        with pytest.raises(ValueError):
            split_address(value)
    else:
        assert split_address(value) == (name, address)


def test_format_address_keeps_plain_addresses_and_quotes_the_others() -> None:
    from remarket_mailer.delivery.providers.http_base import format_address

    assert format_address("shopper1@example.org") == "shopper1@example.org"
    assert format_address("Shop <news@shop.example>") == "Shop <news@shop.example>"
    assert format_address("Ann Lee <ann.lee+x@mail.example.org>") == (
        "Ann Lee <ann.lee+x@mail.example.org>"
    )
    assert format_address("A.B <ab@x.org>") == '"A.B" <ab@x.org>'
    assert "\n" not in format_address("Ann\r\nBcc: x@y.org <ann@x.org>")
    with pytest.raises(ValueError):
        format_address("nobody")


# -- Postmark --------------------------------------------------------------------------------


def postmark_ok(request: httpx.Request) -> httpx.Response:
    items = body_json(request)
    return httpx.Response(
        200,
        json=[
            {"ErrorCode": 0, "Message": "OK", "MessageID": f"pm-{i['Metadata']['delivery_id']}"}
            for i in items
        ],
    )


def test_postmark_batch_request_carries_every_field() -> None:
    rec = Recorder(postmark_ok)
    provider = PostmarkProvider("server-token", message_stream="broadcast", transport=rec.transport)

    results = provider.send_many([message(17), message(18)])

    assert results == [Sent("pm-17"), Sent("pm-18")]
    request = rec.only()
    assert request.method == "POST"
    assert str(request.url) == "https://api.postmarkapp.com/email/batch"
    assert request.headers["X-Postmark-Server-Token"] == "server-token"
    assert request.headers["Content-Type"] == "application/json"
    first = body_json(request)[0]
    assert first == {
        "From": "Shop <news@mail.shop.example>",
        "To": "Ann Example <ann17@example.org>",
        "Subject": "You left something",
        "HtmlBody": "<p>Hi</p>",
        "TextBody": "Hi",
        "ReplyTo": "help@shop.example",
        "Headers": [
            {"Name": "List-Unsubscribe", "Value": UNSUBSCRIBE},
            {"Name": "List-Unsubscribe-Post", "Value": ONE_CLICK},
        ],
        "Metadata": {"delivery_id": "17", "workflow": "abandoned_cart", "step": "reminder_2"},
        "Tag": "abandoned_cart",
        "MessageStream": "broadcast",
    }


def test_postmark_per_item_errors_in_a_200_batch() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=[
                {"ErrorCode": 0, "Message": "OK", "MessageID": "pm-1"},
                {"ErrorCode": 406, "Message": "You tried to send to inactive recipient(s)."},
                {"ErrorCode": 300, "Message": "Invalid email request"},
                {"ErrorCode": 429, "Message": "Rate limit exceeded"},
            ],
        )

    provider = PostmarkProvider("t", transport=Recorder(respond).transport)
    results = provider.send_many([message(i) for i in range(1, 5)])

    assert results[0] == Sent("pm-1")
    assert isinstance(results[1], Permanent) and results[1].hard_bounce
    assert "inactive recipient" in results[1].error
    assert isinstance(results[2], Permanent) and not results[2].hard_bounce
    assert isinstance(results[3], Transient)


def test_postmark_splits_at_500_messages() -> None:
    rec = Recorder(postmark_ok)
    provider = PostmarkProvider("t", transport=rec.transport)

    results = provider.send_many([message(i) for i in range(1, 502)])

    assert [len(body_json(r)) for r in rec.requests] == [500, 1]
    assert results[-1] == Sent("pm-501") and len(results) == 501


def test_postmark_unbuildable_message_fails_alone() -> None:
    rec = Recorder(postmark_ok)
    provider = PostmarkProvider("t", transport=rec.transport)

    results = provider.send_many([message(1), message(2, to_addr="not an address"), message(3)])

    assert results[0] == Sent("pm-1") and results[2] == Sent("pm-3")
    assert isinstance(results[1], Permanent)
    assert [i["Metadata"]["delivery_id"] for i in body_json(rec.only())] == ["1", "3"]


def test_postmark_whole_request_failures() -> None:
    def respond(status: int, body: Any, headers: dict[str, str] | None = None) -> Handler:
        return lambda request: httpx.Response(status, json=body, headers=headers)

    cases: list[tuple[Handler, type, float | None]] = [
        (respond(422, {"ErrorCode": 300, "Message": "Invalid 'From'"}), Permanent, None),
        (respond(422, {"ErrorCode": 406, "Message": "inactive"}), Permanent, None),
        (respond(429, {"Message": "slow down"}, {"Retry-After": "30"}), Transient, 30.0),
        (respond(500, {"Message": "oops"}), Transient, None),
        (respond(503, {"Message": "maintenance"}, {"Retry-After": "5"}), Transient, 5.0),
        (raise_(httpx.ReadTimeout("read timed out")), Transient, None),
        (raise_(httpx.ConnectError("refused")), Transient, None),
    ]
    for handler, kind, retry_after in cases:
        provider = PostmarkProvider("t", transport=httpx.MockTransport(handler))
        results = provider.send_many([message(1), message(2)])
        assert [type(r) for r in results] == [kind, kind], handler
        if isinstance(results[0], Transient):
            assert results[0].retry_after == retry_after


def test_postmark_refused_token_is_not_a_permanent_failure() -> None:
    provider = PostmarkProvider(
        "wrong",
        transport=httpx.MockTransport(
            lambda r: httpx.Response(401, json={"ErrorCode": 10, "Message": "Bad token"})
        ),
    )
    [result] = provider.send_many([message()])
    assert isinstance(result, ProviderFault) and result.reason == "credentials"
    assert "REMARKET_PROVIDER_URL" in result.error
    assert "wrong" not in result.error


def test_postmark_unreadable_200_is_retried_not_lost() -> None:
    provider = PostmarkProvider(
        "t", transport=httpx.MockTransport(lambda r: httpx.Response(200, text="<html>"))
    )
    assert all(isinstance(r, Transient) for r in provider.send_many([message(1), message(2)]))


# -- SendGrid --------------------------------------------------------------------------------


def test_sendgrid_request_carries_every_field() -> None:
    rec = Recorder(lambda r: httpx.Response(202, headers={"X-Message-Id": "sg-abc"}))
    provider = SendGridProvider("SG.key", transport=rec.transport)

    assert provider.send_many([message(17)]) == [Sent("sg-abc")]

    request = rec.only()
    assert str(request.url) == "https://api.sendgrid.com/v3/mail/send"
    assert request.headers["Authorization"] == "Bearer SG.key"
    assert body_json(request) == {
        "personalizations": [
            {
                "to": [{"email": "ann17@example.org", "name": "Ann Example"}],
                "custom_args": {
                    "delivery_id": "17",
                    "workflow": "abandoned_cart",
                    "step": "reminder_2",
                },
                "headers": {"List-Unsubscribe": UNSUBSCRIBE, "List-Unsubscribe-Post": ONE_CLICK},
            }
        ],
        "from": {"email": "news@mail.shop.example", "name": "Shop"},
        "reply_to": {"email": "help@shop.example"},
        "subject": "You left something",
        "content": [
            {"type": "text/plain", "value": "Hi"},
            {"type": "text/html", "value": "<p>Hi</p>"},
        ],
        "categories": ["abandoned_cart"],
    }


def test_sendgrid_one_request_per_message_results_stay_in_order() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        delivery_id = int(body_json(request)["personalizations"][0]["custom_args"]["delivery_id"])
        time.sleep(random.uniform(0, 0.01))  # finish out of order
        if delivery_id % 3 == 0:
            return httpx.Response(
                400, json={"errors": [{"field": "from", "message": "does not match"}]}
            )
        return httpx.Response(202, headers={"X-Message-Id": f"sg-{delivery_id}"})

    rec = Recorder(respond)
    provider = SendGridProvider("k", transport=rec.transport, concurrency=4)
    try:
        results = provider.send_many([message(i) for i in range(1, 13)])
    finally:
        provider.close()

    assert len(rec.requests) == 12
    for delivery_id, result in zip(range(1, 13), results, strict=True):
        if delivery_id % 3 == 0:
            assert isinstance(result, Permanent) and "from: does not match" in result.error
        else:
            assert result == Sent(f"sg-{delivery_id}")


def test_sendgrid_429_waits_for_the_rate_limit_reset() -> None:
    reset = int(time.time()) + 40
    provider = SendGridProvider(
        "k",
        transport=httpx.MockTransport(
            lambda r: httpx.Response(
                429,
                json={"errors": [{"field": None, "message": "too many requests"}]},
                headers={"X-RateLimit-Reset": str(reset)},
            )
        ),
    )
    [result] = provider.send_many([message()])
    assert isinstance(result, Transient)
    assert result.retry_after is not None and 35 <= result.retry_after <= 40


def test_sendgrid_server_error_and_timeout_are_transient() -> None:
    for handler in (
        lambda r: httpx.Response(500, json={"errors": [{"message": "internal"}]}),
        raise_(httpx.WriteTimeout("slow")),
    ):
        provider = SendGridProvider("k", transport=httpx.MockTransport(handler), concurrency=1)
        assert all(isinstance(r, Transient) for r in provider.send_many([message(1), message(2)]))


# -- Mailgun ---------------------------------------------------------------------------------


def test_mailgun_form_request_through_the_eu_url() -> None:
    rec = Recorder(
        lambda r: httpx.Response(200, json={"id": "<2026.1@mg.shop.example>", "message": "Queued"})
    )
    provider = esp_provider_from_url(
        "mailgun://api:key-s%2Fecret@api.eu.mailgun.net/mg.shop.example", transport=rec.transport
    )
    assert isinstance(provider, MailgunProvider)

    assert provider.send_many([message(17)]) == [Sent("2026.1@mg.shop.example")]

    request = rec.only()
    assert str(request.url) == "https://api.eu.mailgun.net/v3/mg.shop.example/messages"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(
        b"api:key-s/ecret"
    ).decode("ascii")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qsl(request.content.decode(), keep_blank_values=True)
    assert form == [
        ("from", "Shop <news@mail.shop.example>"),
        ("to", "Ann Example <ann17@example.org>"),
        ("subject", "You left something"),
        ("text", "Hi"),
        ("html", "<p>Hi</p>"),
        ("h:Reply-To", "help@shop.example"),
        ("h:List-Unsubscribe", UNSUBSCRIBE),
        ("h:List-Unsubscribe-Post", ONE_CLICK),
        ("v:delivery_id", "17"),
        ("v:workflow", "abandoned_cart"),
        ("v:step", "reminder_2"),
        ("o:tag", "abandoned_cart"),
    ]


def test_mailgun_429_try_again_after_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    text = (
        "Domain mg.shop.example is not allowed to send: request limit exceeded, "
        f"try again after {format_datetime(later, usegmt=True)}"
    )
    provider = MailgunProvider(
        "k",
        "mg.shop.example",
        transport=httpx.MockTransport(lambda r: httpx.Response(429, json={"message": text})),
    )
    [result] = provider.send_many([message()])
    assert isinstance(result, Transient)
    assert result.retry_after is not None and 100 < result.retry_after <= 120


def test_mailgun_validation_error_is_permanent() -> None:
    provider = MailgunProvider(
        "k",
        "mg.shop.example",
        transport=httpx.MockTransport(
            lambda r: httpx.Response(400, json={"message": "'from' parameter is not a valid"})
        ),
    )
    [result] = provider.send_many([message()])
    assert isinstance(result, Permanent) and "not a valid" in result.error


# -- Resend ----------------------------------------------------------------------------------


def resend_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, json={"data": [{"id": f"re-{i}"} for i in range(len(body_json(request)))]}
    )


def test_resend_batch_request_carries_every_field() -> None:
    rec = Recorder(resend_ok)
    provider = ResendProvider("re_key", transport=rec.transport)

    assert provider.send_many([message(17), message(18)]) == [Sent("re-0"), Sent("re-1")]

    request = rec.only()
    assert str(request.url) == "https://api.resend.com/emails/batch"
    assert request.headers["Authorization"] == "Bearer re_key"
    assert request.headers["x-batch-validation"] == "permissive"
    assert request.headers["Idempotency-Key"] == batch_idempotency_key([message(17), message(18)])
    assert body_json(request)[0] == {
        "from": "Shop <news@mail.shop.example>",
        "to": ["Ann Example <ann17@example.org>"],
        "subject": "You left something",
        "html": "<p>Hi</p>",
        "text": "Hi",
        "reply_to": ["help@shop.example"],
        "headers": {"List-Unsubscribe": UNSUBSCRIBE, "List-Unsubscribe-Post": ONE_CLICK},
        "tags": [
            {"name": "delivery_id", "value": "17"},
            {"name": "workflow", "value": "abandoned_cart"},
            {"name": "step", "value": "reminder_2"},
        ],
    }


def test_resend_idempotency_key_follows_the_delivery_ids() -> None:
    key = batch_idempotency_key([message(1), message(2)])
    assert key == batch_idempotency_key([message(1, subject="other"), message(2)])
    assert key == batch_idempotency_key([message(2), message(1)])
    assert key != batch_idempotency_key([message(1), message(3)])
    # Another installation (another secret, so other Message-IDs) never shares a key.
    assert key != batch_idempotency_key([message(1, message_id="1.f00@x"), message(2)])
    assert 1 <= len(key) <= 256


def test_resend_sends_under_the_key_the_message_carries() -> None:
    rec = Recorder(resend_ok)
    provider = ResendProvider("k", transport=rec.transport)

    results = provider.send_many([message(18, send_key="stored"), message(17, send_key="stored")])

    assert results == [Sent("re-1"), Sent("re-0")], "results in the caller's order"
    request = rec.only()
    assert request.headers["Idempotency-Key"] == "stored"
    assert [item["tags"][0]["value"] for item in body_json(request)] == ["17", "18"]


def test_resend_plan_keeps_stored_groups_and_keys_new_chunks() -> None:
    provider = ResendProvider("k", transport=httpx.MockTransport(resend_ok))
    stored = [message(7, send_key="k-1"), message(3, send_key="k-1")]
    fresh = [message(n) for n in range(100, 350)]

    chunks = provider.plan([fresh[0], *stored, *fresh[1:]])

    assert [[m.delivery_id for m in c] for c in chunks][0] == [3, 7]
    assert {m.send_key for m in chunks[0]} == {"k-1"}
    assert [len(c) for c in chunks[1:]] == [100, 100, 50]
    for chunk in chunks[1:]:
        assert {m.send_key for m in chunk} == {batch_idempotency_key(chunk)}
    assert provider.plan([m for c in chunks for m in c]) == chunks, "a retry plans the same"


def test_resend_permissive_errors_map_by_index() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "data": [{"id": "re-a"}, {"id": "re-c"}],
                "errors": [{"index": 1, "message": "The `to` field is invalid."}],
            },
        )

    provider = ResendProvider("k", transport=httpx.MockTransport(respond))
    results = provider.send_many([message(1), message(2), message(3)])

    assert results[0] == Sent("re-a") and results[2] == Sent("re-c")
    assert isinstance(results[1], Permanent) and "`to` field" in results[1].error


def test_resend_error_answers() -> None:
    def respond(status: int, name: str, headers: dict[str, str] | None = None) -> Handler:
        body = {"statusCode": status, "name": name, "message": name.replace("_", " ")}
        return lambda request: httpx.Response(status, json=body, headers=headers)

    cases: list[tuple[Handler, type, float | None]] = [
        (respond(422, "invalid_from_address"), Permanent, None),
        (respond(403, "validation_error"), ProviderFault, None),
        (respond(409, "invalid_idempotent_request"), KeyConflict, None),
        (respond(409, "concurrent_idempotent_requests"), Transient, 1.0),
        (respond(409, "conflict"), Permanent, None),
        (respond(429, "rate_limit_exceeded", {"retry-after": "2"}), Transient, 2.0),
        (respond(500, "internal_server_error"), Transient, None),
    ]
    for handler, kind, retry_after in cases:
        provider = ResendProvider("k", transport=httpx.MockTransport(handler))
        [result] = provider.send_many([message()])
        assert isinstance(result, kind)
        if isinstance(result, Transient):
            assert result.retry_after == retry_after


def test_resend_response_with_too_few_ids_is_retried() -> None:
    provider = ResendProvider(
        "k", transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"data": []}))
    )
    assert all(isinstance(r, Transient) for r in provider.send_many([message(1), message(2)]))


# -- Amazon SES v2 ---------------------------------------------------------------------------

SUITE = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TIME = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
SUITE_SCOPE = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "


@pytest.mark.parametrize(
    ("name", "method", "url", "headers", "expected"),
    [
        (
            "get-vanilla",
            "GET",
            "https://example.amazonaws.com/",
            {},
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "post-vanilla",
            "POST",
            "https://example.amazonaws.com/",
            {},
            "SignedHeaders=host;x-amz-date, "
            "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "get-vanilla-query-order-key-case",
            "GET",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            {},
            "SignedHeaders=host;x-amz-date, "
            "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "post-header-value-case",
            "POST",
            "https://example.amazonaws.com/",
            {"My-Header1": "VALUE1"},
            "SignedHeaders=host;my-header1;x-amz-date, "
            "Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
        ),
    ],
)
def test_sigv4_matches_the_aws_test_suite(
    name: str, method: str, url: str, headers: dict[str, str], expected: str
) -> None:
    signed = sigv4_sign(
        method=method,
        url=url,
        headers=headers,
        body=b"",
        credentials=SUITE,
        region="us-east-1",
        service="service",
        when=SUITE_TIME,
    )
    assert signed["X-Amz-Date"] == "20150830T123600Z"
    assert signed["Authorization"] == SUITE_SCOPE + expected, name


def test_ses_send_email_is_signed_over_the_bytes_sent() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    rec = Recorder(lambda r: httpx.Response(200, json={"MessageId": "0102-ses-id"}))
    credentials = AwsCredentials("AKIDTEST", "se/cret+key")
    provider = SesProvider(
        credentials,
        "eu-west-1",
        configuration_set="remarketing",
        transport=rec.transport,
        clock=lambda: when,
    )

    assert provider.send_many([message(17)]) == [Sent("0102-ses-id")]

    request = rec.only()
    assert str(request.url) == "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails"
    assert request.headers["X-Amz-Date"] == "20260102T030405Z"
    authorization = request.headers["Authorization"]
    assert authorization.startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260102/eu-west-1/ses/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature="
    )
    expected = sigv4_sign(
        method="POST",
        url=str(request.url),
        headers={"Content-Type": "application/json"},
        body=request.content,
        credentials=credentials,
        region="eu-west-1",
        service="ses",
        when=when,
    )
    assert authorization == expected["Authorization"]
    assert body_json(request) == {
        "FromEmailAddress": "Shop <news@mail.shop.example>",
        "Destination": {"ToAddresses": ["Ann Example <ann17@example.org>"]},
        "ReplyToAddresses": ["help@shop.example"],
        "Content": {
            "Simple": {
                "Subject": {"Data": "You left something", "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": "Hi", "Charset": "UTF-8"},
                    "Html": {"Data": "<p>Hi</p>", "Charset": "UTF-8"},
                },
                "Headers": [
                    {"Name": "List-Unsubscribe", "Value": UNSUBSCRIBE},
                    {"Name": "List-Unsubscribe-Post", "Value": ONE_CLICK},
                ],
            }
        },
        "EmailTags": [
            {"Name": "delivery_id", "Value": "17"},
            {"Name": "workflow", "Value": "abandoned_cart"},
            {"Name": "step", "Value": "reminder_2"},
        ],
        "ConfigurationSetName": "remarketing",
    }


def test_ses_non_ascii_display_name_is_encoded() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={"MessageId": "x"}))
    provider = SesProvider(SUITE, "eu-west-1", transport=rec.transport)
    provider.send_many([message(from_addr="Schöne Shop <news@mail.shop.example>")])
    sender = body_json(rec.only())["FromEmailAddress"]
    assert sender.startswith("=?utf-8?") and sender.endswith("<news@mail.shop.example>")


def test_ses_error_answers() -> None:
    def respond(status: int, error_type: str, text: str) -> Handler:
        return lambda request: httpx.Response(
            status,
            json={"message": text},
            headers={"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/"},
        )

    cases: list[tuple[Handler, type, float | None]] = [
        (respond(400, "MessageRejected", "Email address is not verified."), Permanent, None),
        (respond(400, "BadRequestException", "Invalid tag value"), Permanent, None),
        (
            respond(429, "TooManyRequestsException", "Maximum sending rate exceeded."),
            Transient,
            None,
        ),
        (respond(400, "SendingPausedException", "Sending is paused"), ProviderFault, None),
        (respond(403, "SignatureDoesNotMatch", "signature mismatch"), ProviderFault, None),
        (respond(500, "InternalFailure", "oops"), Transient, None),
    ]
    for handler, kind, retry_after in cases:
        provider = SesProvider(SUITE, "eu-west-1", transport=httpx.MockTransport(handler))
        [result] = provider.send_many([message()])
        assert isinstance(result, kind), result
        if isinstance(result, Transient):
            assert result.retry_after == retry_after


# -- REMARKET_PROVIDER_URL -------------------------------------------------------------------


def test_non_esp_schemes_are_left_to_the_caller() -> None:
    for url in ("smtp://mail.example:587", "file://./outbox", "memory://", "https://x"):
        assert esp_provider_from_url(url) is None


def test_each_url_form_builds_its_provider() -> None:
    postmark = esp_provider_from_url("postmark://tok@api.postmarkapp.com?stream=broadcast")
    assert isinstance(postmark, PostmarkProvider) and postmark.message_stream == "broadcast"
    sendgrid = esp_provider_from_url("sendgrid://SG.k@api.eu.sendgrid.com?concurrency=8")
    assert isinstance(sendgrid, SendGridProvider)
    assert (sendgrid.base_url, sendgrid.concurrency) == ("https://api.eu.sendgrid.com", 8)
    mailgun = esp_provider_from_url("mailgun://api:key@api.mailgun.net/mg.example.com")
    assert isinstance(mailgun, MailgunProvider)
    assert (mailgun.base_url, mailgun.domain) == ("https://api.mailgun.net", "mg.example.com")
    resend = esp_provider_from_url("resend://re_k@api.resend.com?timeout=5")
    assert isinstance(resend, ResendProvider)
    ses = esp_provider_from_url(
        "ses://AKID:se%2Fcr%2Bet@email.eu-west-1.amazonaws.com?configuration_set=remarketing"
    )
    assert isinstance(ses, SesProvider)
    assert (ses.region, ses.configuration_set) == ("eu-west-1", "remarketing")
    for provider in (postmark, sendgrid, mailgun, resend, ses):
        provider.close()


def test_url_credentials_are_decoded_on_the_wire() -> None:
    seen: dict[str, str] = {}

    def respond(request: httpx.Request) -> httpx.Response:
        seen.update(request.headers)
        return httpx.Response(200, json=[{"ErrorCode": 0, "MessageID": "x"}])

    provider = esp_provider_from_url(
        "postmark://tok%2Fen%40x@api.postmarkapp.com?stream=broadcast",
        transport=httpx.MockTransport(respond),
    )
    assert provider is not None
    provider.send_many([message()])
    assert seen["x-postmark-server-token"] == "tok/en@x"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postmark://api.postmarkapp.com?stream=broadcast", "server token"),
        ("postmark://tok@api.postmarkapp.com", "stream"),
        ("mailgun://api:topsecret@api.mailgun.net", "sending domain"),
        ("ses://AKID:topsecret@ses.example.internal", "region"),
        ("ses://AKID@email.eu-west-1.amazonaws.com", "ACCESS_KEY_ID:SECRET_ACCESS_KEY"),
        ("sendgrid://topsecret@api.sendgrid.com?timout=3", "timout"),
        ("resend://topsecret@api.resend.com?timeout=soon", "timeout"),
        ("sendgrid://topsecret@api.sendgrid.com?concurrency=0", "concurrency"),
        ("resend://topsecret@api.resend.com:99999", "port"),
    ],
)
def test_bad_esp_urls_name_the_setting_and_hide_the_secret(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        esp_provider_from_url(url)
    text = str(caught.value)
    assert text.startswith("REMARKET_PROVIDER_URL: ")
    assert fragment in text
    assert "topsecret" not in text


def test_results_match_messages_one_to_one_for_every_provider() -> None:
    def anything(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"message": "down"})

    transport = httpx.MockTransport(anything)
    providers = [
        PostmarkProvider("t", transport=transport),
        SendGridProvider("k", transport=transport),
        MailgunProvider("k", "mg.example.com", transport=transport),
        ResendProvider("k", transport=transport),
        SesProvider(SUITE, "eu-west-1", transport=transport),
    ]
    batch = [message(i) for i in range(1, 8)]
    for provider in providers:
        results: list[SendResult] = provider.send_many(batch)
        assert len(results) == len(batch) and all(isinstance(r, Transient) for r in results)
        provider.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_request_bodies_are_compact_utf8_json(value: object) -> None:
    """ESP bodies (orjson) read back as the same value with the stdlib, and are the same
    bytes the stdlib's compact UTF-8 form gives - SES signs them."""
    from remarket_mailer.delivery.providers.http_base import json_bytes

    data = json_bytes(value)
    assert json.loads(data) == value
    assert data == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


ENCODED = "=?utf-8?b?QWRtaW4gPGFkbWluQGV2aWwuZXhhbXBsZT4=?="
"""An encoded word that mail clients show as ``Admin <admin@evil.example>``."""


def _shown(address: str) -> tuple[str, str]:
    """(display name, address) as a mail client reads an address header value."""
    parsed = email.message_from_string(f"To: {address}\n\n", policy=email.policy.default)
    (found,) = parsed["To"].addresses
    return found.display_name, found.addr_spec


def test_esps_get_names_and_subjects_no_client_can_read_as_encoded_words() -> None:
    """ESPs write the headers themselves from our plain values: ``=?...?=`` in a first name
    reached them as it was, and ASCII goes into a header untouched."""
    tricky = message(17, to_addr=f"{ENCODED} <ann17@example.org>", subject=f"{ENCODED}, hi")
    rec = Recorder(postmark_ok)
    PostmarkProvider("t", transport=rec.transport).send_many([tricky])
    item = body_json(rec.only())[0]
    name, address = _shown(item["To"])
    assert address == "ann17@example.org"
    assert "evil" not in name and name.replace("\u2060", "") == ENCODED
    assert "=?" not in item["Subject"] and item["Subject"].replace("\u2060", "") == tricky.subject

    rec = Recorder(lambda r: httpx.Response(202, headers={"X-Message-Id": "sg-abc"}))
    SendGridProvider("SG.key", transport=rec.transport).send_many([tricky])
    payload = body_json(rec.only())
    (to,) = payload["personalizations"][0]["to"]
    assert to["email"] == "ann17@example.org"
    assert "=?" not in to["name"] and to["name"].replace("\u2060", "") == ENCODED
    assert "=?" not in payload["subject"]
