"""Resend webhooks: one Svix-signed JSON event per POST.

Webhooks are signed by Svix: HMAC-SHA256 keyed with the base64 part of ``whsec_…`` over
``"{svix-id}.{svix-timestamp}.{body}"``; a timestamp more than 5 minutes off is refused.
The ``tags`` set by the sending side (:mod:`remarket_mailer.delivery.providers.resend`) come
back in ``data.tags``, ``delivery_id`` among them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

from remarket_mailer.errors import ValidationError
from remarket_mailer.tracking.events import (
    BounceClass,
    EventKind,
    TrackingEvent,
    WebhookSignatureError,
    classify_bounce,
)
from remarket_mailer.tracking.webhook_common import (
    check_signed_at,
    header,
    load_json,
    normalize_email,
    require_secret,
)
from remarket_mailer.untrusted_json import as_dict, as_str, parse_time

PROVIDER = "resend"
WEBHOOK_TOLERANCE_SECONDS = 300.0

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
    data = as_dict(payload.get("data"))
    reading = _reading(str(payload.get("type", "")), data)
    if reading is None:
        return []
    kind, bounce_class, detail = reading
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
            user_agent=as_str(as_dict(data.get("click") or data.get("open")).get("userAgent"))
            if kind in ("opened", "clicked")
            else None,
        )
    ]


def _reading(
    name: str, data: Mapping[str, Any]
) -> tuple[EventKind, BounceClass | None, str | None] | None:
    """(kind, bounce class, detail) of a Resend event type, or None for one we do not record."""
    if name in _SIMPLE_EVENTS:
        kind = _SIMPLE_EVENTS[name]
        link = as_str(as_dict(data.get("click")).get("link")) if kind == "clicked" else None
        return kind, None, link
    if name == "email.bounced":
        bounce = as_dict(data.get("bounce"))
        diagnostics = bounce.get("diagnosticCode")
        diagnostic = (
            " ".join(str(d) for d in diagnostics)
            if isinstance(diagnostics, list)
            else as_str(diagnostics)
        )
        esp_class = _BOUNCE_TYPES.get(str(bounce.get("type", "")))
        detail = as_str(bounce.get("message")) or diagnostic or None
        return "bounced", classify_bounce(diagnostic, esp_class), detail
    if name == "email.suppressed":
        return _suppressed(as_dict(data.get("suppressed")))
    if name == "email.failed":
        # Resend never sent it (its docs: invalid recipients, API key or domain problems, quota
        # limits; sample ``failed.reason`` = ``reached_daily_quota``). Nothing says the address
        # is bad: the delivery is marked failed, no one is suppressed.
        reason = as_str(as_dict(data.get("failed")).get("reason"))
        return "failed", None, f"failed at resend: {reason}" if reason else "failed at resend"
    return None


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
