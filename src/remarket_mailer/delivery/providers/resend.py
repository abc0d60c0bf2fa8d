"""Resend: batch send through ``POST /emails/batch`` and the (Svix-signed) webhook parser.

Sending: up to 100 distinct messages per request with ``x-batch-validation: permissive``, so
one invalid message does not sink the others. The 200 response lists the created emails in
``data`` (request order, invalid ones left out) and the invalid ones in ``errors[].index``
(positions in the request): those are permanent. Our tags (``delivery_id`` first) go in
``tags``, with characters Resend does not allow replaced by ``_``.

Idempotency: every request carries the ``Idempotency-Key`` of its messages' ``send_key``.
:meth:`ResendProvider.plan` gives a new chunk a key derived from its deliveries
(:func:`batch_idempotency_key`) and keeps messages that already carry a key (stored on their
deliveries by an earlier attempt) together under it. Resend keeps a key 24 hours: the same key
with the same body answers the first response (the same email ids) and sends nothing; the same
key with another body is 409 ``invalid_idempotent_request`` and sends nothing. After 24 hours a
key is new again, so an attempt that late may send twice.

Errors beyond the common mapping: 409 ``concurrent_idempotent_requests`` is transient (the
first request is still running), 409 ``invalid_idempotent_request`` is a ``KeyConflict`` (the
worker decides: sent already if the key was stored earlier, else permanent); 429
``rate_limit_exceeded`` is transient with ``retry-after`` when Resend sends it.

Account or configuration errors (Resend's error list, ``name`` in the body) are a
``ProviderFault``: the messages are kept and the provider paused.

- 401 ``missing_api_key``, 401/403 ``invalid_api_key``, 401 ``validation_error`` ("API key is
  invalid", what the sending endpoints answer today), 403 ``suspended_api_key``: the key in
  ``REMARKET_PROVIDER_URL`` is missing, wrong, deleted or suspended (any 401 counts);
- 403 ``validation_error``: the From domain is not verified on the account ("You can only send
  testing emails to your own email address", "The … domain is not verified"), which Resend
  answers for the whole request;
- 429 ``daily_quota_exceeded`` / ``monthly_quota_exceeded``: the plan's sending quota is used
  up; no message goes out before it resets (``retry-after`` when given).

A 400/422 ``validation_error`` or ``invalid_from_address`` is about the request itself and
stays permanent.

Webhooks are signed by Svix: HMAC-SHA256 keyed with the base64 part of ``whsec_…`` over
``"{svix-id}.{svix-timestamp}.{body}"``; a timestamp more than 5 minutes off is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from remarket_mailer.delivery.base import (
    KeyConflict,
    OutboundMessage,
    Permanent,
    ProviderFault,
    SendResult,
    Sent,
    Transient,
    plan_keyed,
)
from remarket_mailer.delivery.providers.http_base import (
    ApiRequest,
    HttpProvider,
    clean_headers,
    clean_subject,
    format_address,
    message_tags,
)
from remarket_mailer.delivery.providers.webhooks import (
    BounceClass,
    EventKind,
    TrackingEvent,
    WebhookSignatureError,
    as_dict,
    as_str,
    check_signed_at,
    classify_bounce,
    header,
    load_json,
    normalize_email,
    parse_time,
    require_secret,
)
from remarket_mailer.errors import ValidationError

PROVIDER = "resend"
ACCOUNT_ERRORS: dict[tuple[int, str], tuple[str, str]] = {
    (401, "missing_api_key"): ("credentials", "no API key: check REMARKET_PROVIDER_URL"),
    (403, "invalid_api_key"): ("credentials", "API key refused: check REMARKET_PROVIDER_URL"),
    (401, "invalid_api_key"): ("credentials", "API key refused: check REMARKET_PROVIDER_URL"),
    (401, "validation_error"): ("credentials", "API key refused: check REMARKET_PROVIDER_URL"),
    (403, "suspended_api_key"): ("account_suspended", "API key suspended: contact Resend"),
    (403, "validation_error"): ("sender_unverified", "verify the From domain in Resend"),
    (429, "daily_quota_exceeded"): ("quota", "daily sending quota used up"),
    (429, "monthly_quota_exceeded"): ("quota", "monthly sending quota used up"),
}
"""(HTTP status, error name) → (fault reason, what to fix): the account-wide answers."""
DEFAULT_BASE_URL = "https://api.resend.com"
WEBHOOK_TOLERANCE_SECONDS = 300.0

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _tag_text(value: str) -> str:
    return _TAG_UNSAFE.sub("_", value)[:256] or "_"


def batch_idempotency_key(messages: Sequence[OutboundMessage]) -> str:
    """The ``Idempotency-Key`` of a new chunk: the same deliveries give the same key.

    Derived from the Message-IDs, which are the delivery ids signed with the installation's
    secret, so two databases sending through one Resend account (staging and production, whose
    delivery ids overlap) never share a key.
    """
    ids = ",".join(sorted(m.message_id for m in messages))
    return f"remarket-batch-{hashlib.sha256(ids.encode()).hexdigest()[:48]}"


class ResendProvider(HttpProvider):
    """Sends through Resend's batch endpoint; see the module docstring for the mapping."""

    name = PROVIDER
    max_batch = 100
    batch_api = True
    idempotent = True

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(base_url, transport=transport, client=client, timeout=timeout)
        self._api_key = api_key

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def build_item(self, message: OutboundMessage) -> dict[str, Any]:
        item: dict[str, Any] = {
            "from": format_address(message.from_addr),
            "to": [format_address(message.to_addr)],
            "subject": clean_subject(message),
        }
        if message.html:
            item["html"] = message.html
        if message.text:
            item["text"] = message.text
        if message.reply_to:
            item["reply_to"] = [format_address(message.reply_to)]
        headers = clean_headers(message)
        if headers:
            item["headers"] = headers
        item["tags"] = [
            {"name": _tag_text(k), "value": _tag_text(v)} for k, v in message_tags(message).items()
        ]
        return item

    def plan(self, messages: Sequence[OutboundMessage]) -> list[list[OutboundMessage]]:
        return plan_keyed(messages, self.max_batch, batch_idempotency_key)

    def build_batch_request(
        self, items: Sequence[Any], messages: Sequence[OutboundMessage]
    ) -> ApiRequest:
        key = messages[0].send_key
        assert key is not None, "plan() gives every message its chunk's key"
        return ApiRequest(
            "POST",
            "/emails/batch",
            json_body=list(items),
            headers={"Idempotency-Key": key, "x-batch-validation": "permissive"},
        )

    def parse_batch_response(
        self, response: httpx.Response, messages: Sequence[OutboundMessage]
    ) -> list[SendResult]:
        body = as_dict(response.json())
        created = body.get("data")
        if not isinstance(created, list):
            raise ValueError("batch response without data")
        failed: dict[int, str] = {}
        for error in body.get("errors") or []:
            error = as_dict(error)
            failed[int(error["index"])] = str(error.get("message", "invalid"))
        ids = iter(created)
        results: list[SendResult] = []
        expected = len(messages) - len(failed)
        if len(created) != expected:
            raise ValueError(f"{len(created)} ids for {expected} accepted messages")
        for index in range(len(messages)):
            if index in failed:
                results.append(Permanent(f"resend: {failed[index]}"))
            else:
                results.append(Sent(str(as_dict(next(ids))["id"])))
        return results

    def error_result(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        try:
            error_name = str(as_dict(response.json()).get("name", ""))
        except ValueError:
            error_name = ""
        text = f"resend HTTP {status}: {self.error_message(response)}"
        fault = ACCOUNT_ERRORS.get((status, error_name))
        if fault is not None:
            reason, fix = fault
            return ProviderFault(
                f"{text} ({error_name}: {fix})", reason, self.retry_after(response)
            )
        if status == 409:
            if error_name == "concurrent_idempotent_requests":
                return Transient(text, self.retry_after(response) or 1.0)
            if error_name == "invalid_idempotent_request":
                return KeyConflict(f"{text} ({error_name})")
            return Permanent(text)
        return super().error_result(response)


# -- webhooks --------------------------------------------------------------------------------

_SIMPLE_EVENTS: dict[str, EventKind] = {
    "email.delivered": "delivered",
    "email.delivery_delayed": "deferred",
    "email.complained": "complained",
    "email.opened": "opened",
    "email.clicked": "clicked",
}
_BOUNCE_TYPES: dict[str, BounceClass] = {"Permanent": "hard", "Transient": "soft"}


def _signing_key(secret: str) -> bytes:
    require_secret(secret, PROVIDER)
    encoded = secret.strip().removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookSignatureError("resend: the signing secret is not base64") from exc


def verify_signature(
    headers: Mapping[str, str], body: bytes, secret: str, *, now: float | None = None
) -> None:
    """Verify the Svix headers (``svix-id``, ``svix-timestamp``, ``svix-signature``).

    Raises WebhookSignatureError when a header is missing, the timestamp is not Unix seconds or
    no ``v1`` signature matches; WebhookReplayError when the timestamp is more than five minutes
    from ``now`` (default: the current time).
    """
    key = _signing_key(secret)
    msg_id = header(headers, "svix-id")
    timestamp = header(headers, "svix-timestamp")
    signatures = header(headers, "svix-signature")
    if not (msg_id and timestamp and signatures):
        raise WebhookSignatureError("resend: svix headers missing")
    sent_at = check_signed_at(
        timestamp,
        time.time() if now is None else now,
        max_age=WEBHOOK_TOLERANCE_SECONDS,
        max_ahead=WEBHOOK_TOLERANCE_SECONDS,
        provider=PROVIDER,
    )
    signed = f"{msg_id.strip()}.{sent_at}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(expected, value.encode("ascii", "replace")):
            return
    raise WebhookSignatureError("resend: signature does not verify")


def parse_webhook(
    headers: Mapping[str, str], body: bytes, secret: str, *, now: float | None = None
) -> list[TrackingEvent]:
    """Verify a Resend webhook (``secret`` = ``whsec_…``) and normalize it.

    ``email.bounced`` maps ``bounce.type`` Permanent/Transient to hard/soft (an enhanced status
    code in ``diagnosticCode`` wins); ``email.suppressed`` (Resend refused an address on its
    suppression list) is a complaint when ``suppressed.reason`` says so, else a hard bounce;
    ``email.failed`` (Resend accepted the request, then could not send: quota, key, domain) is
    a ``failed`` event: the delivery did not go out, and no one is suppressed. ``email.sent``,
    ``contact.*`` and ``domain.*`` give no event. ``now`` (Unix seconds) replaces the clock in
    tests. Raises WebhookSignatureError for a bad signature or stale timestamp,
    ValidationError for a body that is not a JSON object.
    """
    verify_signature(headers, body, secret, now=now)
    payload = load_json(body, PROVIDER)
    if not isinstance(payload, dict):
        raise ValidationError("resend: webhook body is not a JSON object", field="body")
    name = str(payload.get("type", ""))
    data = as_dict(payload.get("data"))
    bounce_class: BounceClass | None = None
    detail: str | None = None
    kind: EventKind
    if name in _SIMPLE_EVENTS:
        kind = _SIMPLE_EVENTS[name]
        if kind == "clicked":
            detail = as_str(as_dict(data.get("click")).get("link"))
    elif name == "email.bounced":
        kind = "bounced"
        bounce = as_dict(data.get("bounce"))
        diagnostics = bounce.get("diagnosticCode")
        diagnostic = (
            " ".join(str(d) for d in diagnostics)
            if isinstance(diagnostics, list)
            else as_str(diagnostics)
        )
        esp_class = _BOUNCE_TYPES.get(str(bounce.get("type", "")))
        bounce_class = classify_bounce(diagnostic, esp_class)
        detail = as_str(bounce.get("message")) or diagnostic or None
    elif name == "email.suppressed":
        kind, bounce_class, detail = _suppressed(as_dict(data.get("suppressed")))
    elif name == "email.failed":
        # Resend never sent it (its docs: invalid recipients, API key or domain problems, quota
        # limits; sample ``failed.reason`` = ``reached_daily_quota``). Nothing says the address
        # is bad: the delivery is marked failed, no one is suppressed.
        reason = as_str(as_dict(data.get("failed")).get("reason"))
        kind = "failed"
        detail = f"failed at resend: {reason}" if reason else "failed at resend"
    else:
        return []
    recipients = data.get("to")
    first = recipients[0] if isinstance(recipients, list) and recipients else recipients
    email_address = normalize_email(first)
    occurred_at = parse_time(payload.get("created_at"))
    if email_address is None or occurred_at is None:
        return []
    return [
        TrackingEvent(
            kind=kind,
            email=email_address,
            provider=PROVIDER,
            provider_message_id=as_str(data.get("email_id")),
            delivery_id=_tag_value(data.get("tags"), "delivery_id"),
            occurred_at=occurred_at,
            bounce_class=bounce_class,
            detail=detail,
            # svix-id stays the same across redeliveries of one event.
            raw_id=header(headers, "svix-id"),
        )
    ]


def _suppressed(info: Mapping[str, Any]) -> tuple[EventKind, BounceClass | None, str]:
    """``email.suppressed``: Resend refused the address because it is on the account's
    suppression list, which holds hard bounces and complaints. Resend's sample carries
    ``suppressed{type: "OnAccountSuppressionList", message}``; a ``reason`` (or ``type``) naming
    a complaint makes it a complaint, anything else stays a hard bounce. Both suppress."""
    reason = as_str(info.get("reason")) or as_str(info.get("type")) or ""
    detail = f"suppressed by resend: {reason}" if reason else "suppressed by resend"
    if "complain" in reason.lower():
        return "complained", None, detail
    return "bounced", "hard", detail


def _tag_value(tags: Any, name: str) -> str | None:
    # Webhooks show tags as {name: value}; accept the send-side [{name, value}] too.
    if isinstance(tags, dict):
        return as_str(tags.get(name))
    if isinstance(tags, list):
        for tag in tags:
            tag = as_dict(tag)
            if tag.get("name") == name:
                return as_str(tag.get("value"))
    return None
