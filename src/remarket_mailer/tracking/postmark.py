"""Postmark webhooks: one record per POST, authenticated with basic auth.

Webhooks carry no signature: configure the webhook URL with basic auth
(``https://user:pass@host/v1/webhooks/postmark``) and pass ``"user:pass"`` as the secret.
Our ``delivery_id`` comes back in the record's ``Metadata`` (set by the sending side,
:mod:`remarket_mailer.delivery.providers.postmark`).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from datetime import datetime
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
    header,
    load_json,
    normalize_email,
    require_secret,
)
from remarket_mailer.untrusted_json import as_dict, as_str, parse_time

PROVIDER = "postmark"

_BOUNCE_TYPES: dict[str, tuple[EventKind, BounceClass | None]] = {
    "HardBounce": ("bounced", "hard"),
    "BadEmailAddress": ("bounced", "hard"),
    "ManuallyDeactivated": ("bounced", "hard"),
    "SoftBounce": ("bounced", "soft"),
    "Transient": ("deferred", None),
    "DnsError": ("deferred", None),
    "Blocked": ("bounced", "policy"),
    "DMARCPolicy": ("bounced", "policy"),
    "SpamNotification": ("complained", None),
    "SpamComplaint": ("complained", None),
    "Unsubscribe": ("unsubscribed", None),
    "ManualSuppression": ("unsubscribed", None),
}
# Bounce types that say nothing about the recipient's mailbox or consent.
_IGNORED_BOUNCE_TYPES = frozenset(
    {
        "AutoResponder",
        "AddressChange",
        "ChallengeVerification",
        "OpenRelayTest",
        "Subscribe",
        "SMTPApiError",
        "TemplateRenderingFailed",
        "InboundError",
        "Unconfirmed",
        "VirusNotification",
    }
)
_SUPPRESSION_REASONS: dict[str, tuple[EventKind, BounceClass | None]] = {
    "HardBounce": ("bounced", "hard"),
    "SpamComplaint": ("complained", None),
    "ManualSuppression": ("unsubscribed", None),
}


def verify_basic_auth(headers: Mapping[str, str], secret: str) -> None:
    """Check the request's ``Authorization: Basic`` credentials against ``"user:pass"``.

    Raises WebhookSignatureError when the header is missing, malformed or wrong.
    """
    require_secret(secret, PROVIDER)
    value = header(headers, "authorization") or ""
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise WebhookSignatureError("postmark: missing basic-auth credentials")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except ValueError as exc:
        raise WebhookSignatureError("postmark: malformed basic-auth credentials") from exc
    if not hmac.compare_digest(given, secret.encode("utf-8")):
        raise WebhookSignatureError("postmark: wrong basic-auth credentials")


def parse_webhook(headers: Mapping[str, str], body: bytes, secret: str) -> list[TrackingEvent]:
    """Verify a Postmark webhook (basic auth, ``secret`` = ``"user:pass"``) and normalize it.

    One Postmark POST carries one record (``RecordType`` Delivery, Bounce, SpamComplaint, Open,
    Click or SubscriptionChange). Records outside our vocabulary give an empty list.
    Raises WebhookSignatureError for bad credentials, ValidationError for a body that is not a
    JSON object.
    """
    verify_basic_auth(headers, secret)
    record = load_json(body, PROVIDER)
    if not isinstance(record, dict):
        raise ValidationError("postmark: webhook body is not a JSON object", field="body")
    event = _record_event(record)
    return [event] if event is not None else []


def _record_event(record: Mapping[str, Any]) -> TrackingEvent | None:
    record_type = record.get("RecordType")
    bounce_class: BounceClass | None = None
    detail = as_str(record.get("Description")) or as_str(record.get("Details"))
    kind: EventKind
    if record_type == "Delivery":
        kind, when = "delivered", record.get("DeliveredAt")
    elif record_type in ("Bounce", "SpamComplaint"):
        when = record.get("BouncedAt")
        bounce_type = str(record.get("Type", ""))
        if bounce_type in _IGNORED_BOUNCE_TYPES:
            return None
        kind, esp_class = _BOUNCE_TYPES.get(bounce_type, ("bounced", None))
        if record_type == "SpamComplaint":
            kind = "complained"
        if kind == "bounced":
            bounce_class = classify_bounce(as_str(record.get("Details")), esp_class)
        detail = f"{bounce_type}: {detail}" if detail else bounce_type or None
    elif record_type == "Open":
        kind, when = "opened", record.get("ReceivedAt")
    elif record_type == "Click":
        kind, when = "clicked", record.get("ReceivedAt")
        detail = as_str(record.get("OriginalLink"))
    elif record_type == "SubscriptionChange":
        if not record.get("SuppressSending"):
            return None  # a reactivation: nothing for the suppression list to do
        when = record.get("ChangedAt")
        reason = str(record.get("SuppressionReason", ""))
        kind, bounce_class = _SUPPRESSION_REASONS.get(reason, ("unsubscribed", None))
        detail = f"suppressed: {reason}" if reason else "suppressed"
    else:
        return None
    email = normalize_email(record.get("Email")) or normalize_email(record.get("Recipient"))
    occurred_at = parse_time(when)
    if email is None or occurred_at is None:
        return None
    message_id = as_str(record.get("MessageID"))
    return TrackingEvent(
        kind=kind,
        email=email,
        provider=PROVIDER,
        provider_message_id=message_id,
        delivery_id=as_str(as_dict(record.get("Metadata")).get("delivery_id")),
        occurred_at=occurred_at,
        bounce_class=bounce_class,
        detail=detail,
        raw_id=_raw_id(record, message_id, occurred_at),
        user_agent=as_str(record.get("UserAgent")) if kind in ("opened", "clicked") else None,
    )


def _raw_id(record: Mapping[str, Any], message_id: str | None, when: datetime) -> str:
    # Only bounce records carry an ID; the others are unique by type, message and time.
    event_id = as_str(record.get("ID"))
    if event_id:
        return f"{record.get('RecordType')}:{event_id}"
    return f"{record.get('RecordType')}:{message_id}:{when.isoformat()}"
