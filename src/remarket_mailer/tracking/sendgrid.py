"""SendGrid Event Webhook: a signed JSON array of events per POST.

Webhooks are signed with ECDSA P-256 / SHA-256 over ``timestamp + raw body``; the secret is the
base64 verification key shown in SendGrid's Mail Settings (a DER public key; PEM also works). A
signed timestamp more than 10 minutes from now is refused, so a captured batch cannot be
replayed later. ``custom_args`` set by the sending side
(:mod:`remarket_mailer.delivery.providers.sendgrid`) come back as top-level keys of each event,
``delivery_id`` among them; ``sg_message_id`` is reported up to its first dot, which is the
``X-Message-Id`` the send was answered with.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

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

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
WEBHOOK_TOLERANCE_SECONDS = 600.0

_SIMPLE_EVENTS: dict[str, EventKind] = {
    "delivered": "delivered",
    "deferred": "deferred",
    "open": "opened",
    "click": "clicked",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}
# "dropped": SendGrid refused to send. Its documented reasons (glossary "Drops" and the Event
# Webhook reference) are matched exactly, never as substrings: "Bounced Address",
# "Unsubscribed Address", "Spam Reporting Address" and "Invalid" (the address is on the
# account's Invalid Emails list) are about the address and suppress it. The sender-side ones
# ("Invalid SMTPAPI header", "Spam Content" from the Spam Checker, "Recipient List over Package
# Quota", "Duplicate message", or any reason not listed here) say nothing about the address:
# they are recorded as a policy bounce, which suppresses no one.
_ADDRESS_DROP_REASONS: dict[str, tuple[EventKind, BounceClass | None]] = {
    "bounced address": ("bounced", "hard"),
    "invalid": ("bounced", "hard"),
    "unsubscribed address": ("unsubscribed", None),
    "spam reporting address": ("complained", None),
}
_SENDER_DROP: tuple[EventKind, BounceClass | None] = ("bounced", "policy")


def load_verification_key(secret: str) -> ec.EllipticCurvePublicKey:
    """The ECDSA public key from SendGrid's base64 verification key (or a PEM block).

    Raises WebhookSignatureError when ``secret`` is not an EC public key.
    """
    require_secret(secret, PROVIDER)
    try:
        if secret.lstrip().startswith("-----BEGIN"):
            key = load_pem_public_key(secret.encode("ascii"))
        else:
            key = load_der_public_key(base64.b64decode(secret.strip(), validate=True))
    except ValueError as exc:
        raise WebhookSignatureError("sendgrid: the verification key is not readable") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise WebhookSignatureError("sendgrid: the verification key is not an ECDSA key")
    return key


def verify_signature(
    headers: Mapping[str, str], body: bytes, secret: str, *, now: float | None = None
) -> None:
    """Verify ``X-Twilio-Email-Event-Webhook-Signature`` over timestamp + raw body.

    Raises WebhookSignatureError when a header is missing, the timestamp is not Unix seconds
    or the signature does not verify; WebhookReplayError when the signed timestamp is more
    than ten minutes from ``now`` (default: the current time).
    """
    key = load_verification_key(secret)
    signature = header(headers, SIGNATURE_HEADER)
    timestamp = header(headers, TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise WebhookSignatureError("sendgrid: signature or timestamp header missing")
    try:
        der = base64.b64decode(signature.strip(), validate=True)
        key.verify(der, timestamp.strip().encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature) as exc:
        raise WebhookSignatureError("sendgrid: signature does not verify") from exc
    # SendGrid documents no tolerance; without one a captured batch verifies forever.
    check_signed_at(
        timestamp,
        time.time() if now is None else now,
        max_age=WEBHOOK_TOLERANCE_SECONDS,
        max_ahead=WEBHOOK_TOLERANCE_SECONDS,
        provider=PROVIDER,
    )


def parse_webhook(
    headers: Mapping[str, str], body: bytes, secret: str, *, now: float | None = None
) -> list[TrackingEvent]:
    """Verify a SendGrid Event Webhook POST (``secret`` = verification key) and normalize it.

    The body is a JSON array of events; each maps to at most one TrackingEvent (``processed``
    and resubscribes map to none). ``now`` (Unix seconds) replaces the clock in tests. Raises
    WebhookSignatureError for a bad signature or a stale timestamp (WebhookReplayError),
    ValidationError for a body that is not a JSON array.
    """
    verify_signature(headers, body, secret, now=now)
    batch = load_json(body, PROVIDER)
    if not isinstance(batch, list):
        raise ValidationError("sendgrid: webhook body is not a JSON array", field="body")
    events = (_event(as_dict(item)) for item in batch)
    return [e for e in events if e is not None]


def _event(item: Mapping[str, Any]) -> TrackingEvent | None:
    name = str(item.get("event", ""))
    bounce_class: BounceClass | None = None
    detail = as_str(item.get("reason")) or as_str(item.get("response"))
    kind: EventKind
    if name in _SIMPLE_EVENTS:
        kind = _SIMPLE_EVENTS[name]
        if kind == "clicked":
            detail = as_str(item.get("url"))
    elif name == "bounce":
        kind = "bounced"
        # type "blocked" is a receiver-side block (reputation, content), not a bad address.
        fallback: BounceClass = "policy" if item.get("type") == "blocked" else "hard"
        diagnostic = " ".join(filter(None, (as_str(item.get("status")), detail)))
        bounce_class = classify_bounce(diagnostic, fallback)
    elif name == "dropped":
        reason = " ".join((detail or "").split()).lower()
        kind, bounce_class = _ADDRESS_DROP_REASONS.get(reason, _SENDER_DROP)
    else:
        return None
    email = normalize_email(item.get("email"))
    occurred_at = parse_time(item.get("timestamp"))
    if email is None or occurred_at is None:
        return None
    sg_message_id = as_str(item.get("sg_message_id"))
    return TrackingEvent(
        kind=kind,
        email=email,
        provider=PROVIDER,
        provider_message_id=sg_message_id.split(".", 1)[0] if sg_message_id else None,
        delivery_id=as_str(item.get("delivery_id")),
        occurred_at=occurred_at,
        bounce_class=bounce_class,
        detail=detail,
        raw_id=as_str(item.get("sg_event_id")),
        user_agent=as_str(item.get("useragent")) if kind in ("opened", "clicked") else None,
    )
