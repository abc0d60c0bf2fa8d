"""Account and configuration answers of each provider become a ``ProviderFault`` (the message
is kept, the provider paused); answers about one message stay ``Permanent``.

The bodies are written for these tests from each provider's documented error list (Postmark's
API error codes, Resend's error names, Mailgun's and SendGrid's status codes, the SES v2
SendEmail errors): the facts, not their text. Plus the pure pause rules.
"""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from remarket_mailer.delivery.base import (
    OutboundMessage,
    Permanent,
    ProviderFault,
    SendResult,
    Sent,
    Transient,
)
from remarket_mailer.delivery.providers.mailgun import MailgunProvider
from remarket_mailer.delivery.providers.postmark import PostmarkProvider
from remarket_mailer.delivery.providers.resend import ResendProvider
from remarket_mailer.delivery.providers.sendgrid import SendGridProvider
from remarket_mailer.delivery.providers.ses import AwsCredentials, SesProvider
from remarket_mailer.delivery.providers.smtp import SmtpProvider, SmtpSettings, classify_smtp_error
from remarket_mailer.domain.provider_pause import (
    Gate,
    ProviderPause,
    after_fault,
    gate,
    pause_length,
)

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def message(delivery_id: int = 1) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=delivery_id,
        message_id=f"{delivery_id}.x@mail.shop.example",
        from_addr="Shop <news@mail.shop.example>",
        to_addr=f"ann{delivery_id}@example.org",
        subject="You left something",
        html="<p>Hi</p>",
        text="Hi",
    )


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body, headers=headers))


def one(provider: Any) -> SendResult:
    [result] = provider.send_many([message()])
    return result


# -- Postmark --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "reason"),
    [
        (10, "The Server Token you provided was invalid.", "credentials"),
        (400, "The From address has no sender signature.", "sender_unverified"),
        (401, "The sender signature is not confirmed yet.", "sender_unverified"),
        (405, "The account has run out of credits.", "account_suspended"),
        (412, "The account is pending approval.", "account_pending"),
        (413, "The account may not send.", "account_suspended"),
    ],
)
def test_postmark_account_error_codes_are_faults(code: int, text: str, reason: str) -> None:
    # As a whole-request answer (HTTP 422) ...
    result = one(PostmarkProvider("t", transport=answer(422, {"ErrorCode": code, "Message": text})))
    assert isinstance(result, ProviderFault) and result.reason == reason
    assert f"ErrorCode {code}" in result.error
    # ... and as one item of a batch answered 200.
    items = [
        {"ErrorCode": 0, "Message": "OK", "MessageID": "pm-1"},
        {"ErrorCode": code, "Message": text},
    ]
    provider = PostmarkProvider("t", transport=answer(200, items))
    sent, fault = provider.send_many([message(1), message(2)])
    assert sent == Sent("pm-1")
    assert isinstance(fault, ProviderFault) and fault.reason == reason


def test_postmark_message_level_codes_stay_permanent() -> None:
    for code in (300, 406, 402):
        result = one(PostmarkProvider("t", transport=answer(422, {"ErrorCode": code})))
        assert isinstance(result, Permanent), code
    # HTTP 413 is a request over the size limit, not ErrorCode 413.
    assert isinstance(one(PostmarkProvider("t", transport=answer(413, {}))), Permanent)


def test_postmark_http_401_is_a_fault_whatever_its_body() -> None:
    for body in ({"ErrorCode": 10, "Message": "Bad or missing token"}, {"Message": "no"}, None):
        result = one(PostmarkProvider("t", transport=answer(401, body)))
        assert isinstance(result, ProviderFault) and result.reason == "credentials", body


# -- Resend ----------------------------------------------------------------------------------


def resend_error(status: int, name: str, message: str) -> dict[str, Any]:
    return {"statusCode": status, "name": name, "message": message}


@pytest.mark.parametrize(
    ("status", "name", "reason"),
    [
        (401, "missing_api_key", "credentials"),
        (403, "invalid_api_key", "credentials"),
        (401, "validation_error", "credentials"),
        (403, "suspended_api_key", "account_suspended"),
        (403, "validation_error", "sender_unverified"),
        (429, "daily_quota_exceeded", "quota"),
        (429, "monthly_quota_exceeded", "quota"),
    ],
)
def test_resend_account_errors_are_faults(status: int, name: str, reason: str) -> None:
    body = resend_error(status, name, "the account cannot send this way")
    result = one(ResendProvider("re_x", transport=answer(status, body)))
    assert isinstance(result, ProviderFault) and result.reason == reason
    assert name in result.error


def test_resend_quota_fault_keeps_the_reset_hint() -> None:
    body = resend_error(429, "daily_quota_exceeded", "daily quota reached")
    result = one(ResendProvider("re_x", transport=answer(429, body, {"retry-after": "3600"})))
    assert isinstance(result, ProviderFault) and result.retry_after == 3600.0


def test_resend_request_errors_stay_permanent_and_rate_limits_transient() -> None:
    for status, name in ((422, "invalid_from_address"), (400, "validation_error")):
        result = one(
            ResendProvider("re_x", transport=answer(status, resend_error(status, name, "")))
        )
        assert isinstance(result, Permanent), name
    limited = resend_error(429, "rate_limit_exceeded", "too many requests")
    result = one(ResendProvider("re_x", transport=answer(429, limited, {"retry-after": "1"})))
    assert isinstance(result, Transient)


# -- Mailgun ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (401, "Forbidden", "credentials"),
        (
            403,
            {"message": "Domain is not allowed to send: sandbox recipients"},
            "account_forbidden",
        ),
        (404, {"message": "Domain not found: mail.shop.example"}, "domain_not_found"),
    ],
)
def test_mailgun_account_answers_are_faults(status: int, body: Any, reason: str) -> None:
    transport = httpx.MockTransport(
        lambda request: (
            httpx.Response(status, text=body)
            if isinstance(body, str)
            else httpx.Response(status, json=body)
        )
    )
    result = one(MailgunProvider("key-x", "mail.shop.example", transport=transport))
    assert isinstance(result, ProviderFault) and result.reason == reason
    if status == 404:
        assert "api.eu.mailgun.net" in result.error  # the region is the usual mistake


def test_mailgun_bad_request_stays_permanent() -> None:
    body = {"message": "'to' parameter is not a valid address. please check documentation"}
    result = one(MailgunProvider("key-x", "mail.shop.example", transport=answer(400, body)))
    assert isinstance(result, Permanent)


# -- SendGrid --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message_text", "reason"),
    [
        (401, "The provided authorization grant is invalid, expired, or revoked", "credentials"),
        (
            403,
            "The from address does not match a verified Sender Identity.",
            "account_forbidden",
        ),
    ],
)
def test_sendgrid_401_and_403_are_faults(status: int, message_text: str, reason: str) -> None:
    body = {"errors": [{"message": message_text, "field": None, "help": None}]}
    result = one(SendGridProvider("SG.x", transport=answer(status, body)))
    assert isinstance(result, ProviderFault) and result.reason == reason
    assert message_text in result.error


def test_sendgrid_invalid_request_stays_permanent() -> None:
    body = {"errors": [{"message": "Does not contain a valid address.", "field": "to"}]}
    assert isinstance(one(SendGridProvider("SG.x", transport=answer(400, body))), Permanent)


# -- SES v2 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "reason"),
    [
        (400, "AccountSuspendedException", "account_suspended"),
        (400, "SendingPausedException", "account_suspended"),
        (400, "MailFromDomainNotVerifiedException", "sender_unverified"),
        (404, "NotFoundException", "configuration_set_missing"),
        (403, "UnrecognizedClientException", "credentials"),
        (403, "InvalidSignatureException", "credentials"),
    ],
)
def test_ses_account_and_configuration_errors_are_faults(
    status: int, error_type: str, reason: str
) -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            status,
            json={"message": "refused for the account"},
            headers={"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/"},
        )
    )
    provider = SesProvider(
        AwsCredentials("AKID", "secret"),
        "eu-west-1",
        configuration_set="remarketing",
        transport=transport,
    )
    result = one(provider)
    assert isinstance(result, ProviderFault) and result.reason == reason
    assert error_type in result.error


def test_ses_message_rejected_stays_permanent() -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            400, json={"__type": "MessageRejected", "message": "Email address is not verified."}
        )
    )
    provider = SesProvider(AwsCredentials("AKID", "secret"), "eu-west-1", transport=transport)
    assert isinstance(one(provider), Permanent)


# -- SMTP ------------------------------------------------------------------------------------


def test_smtp_authentication_answers_are_faults_and_mailbox_answers_are_not() -> None:
    for code in (530, 535):
        result = classify_smtp_error(code, "5.7.8 Authentication credentials invalid")
        assert isinstance(result, ProviderFault) and result.reason == "credentials"
    bounce = classify_smtp_error(550, "5.1.1 user unknown")
    assert isinstance(bounce, Permanent) and bounce.hard_bounce


def test_smtp_login_refused_faults_the_whole_request(monkeypatch: pytest.MonkeyPatch) -> None:
    class RefusingSmtp:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def starttls(self, **kwargs: Any) -> None:
            pass

        def login(self, user: str, password: str) -> None:
            raise smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication failed")

        def close(self) -> None:
            pass

    monkeypatch.setattr(smtplib, "SMTP", RefusingSmtp)
    provider = SmtpProvider(SmtpSettings.from_url("smtp://u:p@mail.example:587?starttls=true"))
    results = provider.send_many([message(1), message(2), message(3)])
    assert all(isinstance(r, ProviderFault) and r.reason == "credentials" for r in results)


# -- the pause rules -------------------------------------------------------------------------


def test_pause_doubles_per_consecutive_fault_up_to_fifteen_minutes() -> None:
    lengths = [pause_length(n).total_seconds() for n in range(1, 8)]
    assert lengths == [60, 120, 240, 480, 900, 900, 900]
    assert pause_length(1, retry_after=3600).total_seconds() == 3600  # a quota reset
    assert pause_length(10_000) == timedelta(minutes=15)


def pause(until: datetime, faults: int = 1, probing: bool = False) -> ProviderPause:
    return ProviderPause("postmark", faults, until, probing, "credentials", "401")


def test_gate() -> None:
    assert gate(None, NOW) is Gate.OPEN
    assert gate(pause(NOW + timedelta(seconds=1)), NOW) is Gate.CLOSED
    assert gate(pause(NOW), NOW) is Gate.PROBE
    assert gate(pause(NOW + timedelta(minutes=5), probing=True), NOW) is Gate.PROBE


def test_a_fault_while_paused_keeps_the_pause_and_a_refused_probe_doubles_it() -> None:
    first, started = after_fault(None, "postmark", NOW, "credentials", "401")
    assert started and first.faults == 1 and first.paused_until == NOW + timedelta(seconds=60)
    # Another worker's request, out at the same moment: no second pause, no doubling.
    same, started = after_fault(first, "postmark", NOW + timedelta(seconds=1), "credentials", "")
    assert not started and same == first
    # The probe after the pause is refused again: twice as long.
    probe = pause(NOW + timedelta(minutes=5), faults=1, probing=True)
    later = NOW + timedelta(seconds=61)
    second, started = after_fault(probe, "postmark", later, "credentials", "401")
    assert started and second.faults == 2 and not second.probing
    assert second.paused_until == later + timedelta(seconds=120)


def test_with_the_database_away_requests_go_and_faults_still_keep_their_messages() -> None:
    from contextlib import contextmanager

    from remarket_mailer.domain.clock import VirtualClock
    from remarket_mailer.errors import UnavailableError
    from remarket_mailer.services.provider_pauses import ProviderPauses

    class Away:
        @contextmanager
        def __call__(self) -> Any:
            raise UnavailableError("the database is not reachable; retry shortly")
            yield

    pauses = ProviderPauses(Away(), VirtualClock(NOW), timedelta(minutes=5))  # type: ignore[arg-type]
    assert pauses.gate("postmark").gate is Gate.OPEN
    kept = pauses.fault("postmark", ProviderFault("401 refused", "credentials"))
    assert kept.paused_until == NOW + timedelta(seconds=60)
