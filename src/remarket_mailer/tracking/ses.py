"""Amazon SES events through SNS: the SNS signature check and the SES event parser.

Webhooks arrive through SNS: :func:`parse_sns` checks the SNS signature (``sns.py``: RSA
against the certificate at ``SigningCertURL``, from a bounded, rate-limited cache) and accepts
only the configured topic ARNs.
A ``SubscriptionConfirmation`` gives no events but exposes ``subscribe_url``: GET it once to
confirm the subscription. The ``EmailTags`` set by the sending side
(:mod:`remarket_mailer.delivery.providers.ses`) come back in ``mail.tags``, ``delivery_id``
among them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from remarket_mailer.errors import ValidationError
from remarket_mailer.tracking.events import (
    BounceClass,
    EventKind,
    TrackingEvent,
    WebhookSignatureError,
    classify_bounce,
)
from remarket_mailer.tracking.sns import SnsCertificates, verify_sns_signature
from remarket_mailer.tracking.webhook_common import (
    header,
    load_json,
    normalize_email,
    require_secret,
)
from remarket_mailer.untrusted_json import as_dict, as_str, bare_message_id, parse_time

PROVIDER = "ses"

_SNS_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
_BOUNCE_TYPES: dict[str, BounceClass] = {"Permanent": "hard", "Transient": "soft"}
_ENGAGEMENT_KINDS: dict[str, EventKind] = {
    "Open": "opened",
    "Click": "clicked",
    "Subscription": "unsubscribed",
}


@dataclass(frozen=True, slots=True)
class SnsMessage:
    """A verified SNS delivery: its type, and either events or a subscription to confirm."""

    type: str
    message_id: str
    topic_arn: str
    events: list[TrackingEvent]
    subscribe_url: str | None = None
    """For ``SubscriptionConfirmation``: GET this URL once to start receiving events."""


CERTIFICATES = SnsCertificates()
"""The process's certificate cache, used when :func:`parse_sns` is given no fetcher."""


def parse_sns(
    headers: Mapping[str, str],
    body: bytes,
    *,
    topic_arns: Collection[str],
    fetch_certificate: Callable[[str], bytes] | None = None,
) -> SnsMessage:
    """Verify an SNS HTTP delivery and read the SES events in it.

    Only messages from ``topic_arns`` are accepted: a valid AWS signature also comes from a
    stranger's topic pointed at our URL. ``fetch_certificate`` returns the PEM bytes for a cert
    URL (default: :data:`CERTIFICATES`). Raises ValidationError (field ``body``) when the body
    is not JSON or nests too deep, WebhookSignatureError when the message is not provably from
    one of our topics, WebhookBusyError when its certificate cannot be fetched this minute,
    ValidationError when a signed notification holds something other than an SES event.
    """
    message = load_json(body, PROVIDER)
    if not isinstance(message, dict) or message.get("Type") not in _SNS_TYPES:
        raise WebhookSignatureError("ses: body is not an SNS message")
    header_type = header(headers, "x-amz-sns-message-type")
    if header_type is not None and header_type != message["Type"]:
        raise WebhookSignatureError("ses: x-amz-sns-message-type does not match the body")
    topic_arn = str(message.get("TopicArn", ""))
    if topic_arn not in topic_arns:
        raise WebhookSignatureError("ses: message from a topic that is not configured")
    verify_sns_signature(message, fetch_certificate or CERTIFICATES.fetch)
    sns_type = str(message["Type"])
    message_id = str(message.get("MessageId", ""))
    if sns_type == "SubscriptionConfirmation":
        return SnsMessage(
            sns_type, message_id, topic_arn, [], subscribe_url=as_str(message.get("SubscribeURL"))
        )
    if sns_type != "Notification":
        return SnsMessage(sns_type, message_id, topic_arn, [])
    return SnsMessage(sns_type, message_id, topic_arn, _notification_events(message))


def parse_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    fetch_certificate: Callable[[str], bytes] | None = None,
) -> list[TrackingEvent]:
    """Verify an SNS delivery of SES events and normalize it; ``secret`` lists the accepted
    topic ARNs, comma-separated.

    A SubscriptionConfirmation gives no events: call :func:`parse_sns` to get its
    ``subscribe_url``. Raises WebhookSignatureError and ValidationError as :func:`parse_sns`.
    """
    require_secret(secret, PROVIDER)
    topics = {t.strip() for t in secret.split(",") if t.strip()}
    return parse_sns(headers, body, topic_arns=topics, fetch_certificate=fetch_certificate).events


def _notification_events(message: Mapping[str, Any]) -> list[TrackingEvent]:
    text = str(message.get("Message", ""))
    if not text.lstrip().startswith("{"):
        return []  # e.g. "Successfully validated SNS topic for Amazon SES event publishing."
    event = load_json(text.encode("utf-8"), PROVIDER)
    if not isinstance(event, dict):
        raise ValidationError("ses: SNS Message is not an SES event", field="Message")
    return _ses_events(event, message)


@dataclass(frozen=True, slots=True)
class _Reading:
    """What one SES event says, before it is split per recipient."""

    kind: EventKind
    section: dict[str, Any]
    """The event type's own object (``bounce``, ``delivery``, …), which holds its timestamp."""
    recipients: list[tuple[Any, str | None]]
    """(email, status/diagnostic text) per recipient the event is about."""
    esp_class: BounceClass | None = None
    detail: str | None = None


def _reading(name: str, event: Mapping[str, Any], destinations: list[str]) -> _Reading | None:
    if name == "Bounce":
        section = as_dict(event.get("bounce"))
        bounce_type = str(section.get("bounceType", ""))
        recipients = [
            (as_dict(r).get("emailAddress"), _diagnostic(as_dict(r)))
            for r in section.get("bouncedRecipients") or []
        ]
        subtype = f"{bounce_type}: {section.get('bounceSubType', '')}"
        return _Reading("bounced", section, recipients, _BOUNCE_TYPES.get(bounce_type), subtype)
    if name == "Complaint":
        section = as_dict(event.get("complaint"))
        if section.get("complaintFeedbackType") == "not-spam":
            return None
        recipients = [
            (as_dict(r).get("emailAddress"), None)
            for r in section.get("complainedRecipients") or []
        ]
        detail = as_str(section.get("complaintFeedbackType"))
        return _Reading("complained", section, recipients, detail=detail)
    if name == "Delivery":
        section = as_dict(event.get("delivery"))
        recipients = [(r, None) for r in section.get("recipients") or destinations]
        response = as_str(section.get("smtpResponse"))
        return _Reading("delivered", section, recipients, detail=response)
    if name == "DeliveryDelay":
        section = as_dict(event.get("deliveryDelay"))
        recipients = [
            (as_dict(r).get("emailAddress"), _diagnostic(as_dict(r)))
            for r in section.get("delayedRecipients") or []
        ]
        return _Reading("deferred", section, recipients, detail=as_str(section.get("delayType")))
    if name in _ENGAGEMENT_KINDS:
        section = as_dict(event.get(name.lower()))
        detail = as_str(section.get("link")) if name == "Click" else None
        recipients = [(d, None) for d in destinations]
        return _Reading(_ENGAGEMENT_KINDS[name], section, recipients, detail=detail)
    return None


def _ses_events(event: Mapping[str, Any], sns: Mapping[str, Any]) -> list[TrackingEvent]:
    name = str(event.get("eventType") or event.get("notificationType") or "")
    mail = as_dict(event.get("mail"))
    destinations = [d for d in mail.get("destination") or [] if isinstance(d, str)]
    reading = _reading(name, event, destinations)
    if reading is None:
        return []
    when = parse_time(reading.section.get("timestamp")) or parse_time(sns.get("Timestamp"))
    if when is None:
        return []
    tags = as_dict(mail.get("tags")).get("delivery_id")
    delivery_id = as_str(tags[0]) if isinstance(tags, list) and tags else as_str(tags)
    sns_id = str(sns.get("MessageId", ""))
    kind, detail = reading.kind, reading.detail
    events: list[TrackingEvent] = []
    for index, (address, diagnostic) in enumerate(reading.recipients):
        email_address = normalize_email(address)
        if email_address is None:
            continue
        events.append(
            TrackingEvent(
                kind=kind,
                email=email_address,
                provider=PROVIDER,
                provider_message_id=bare_message_id(mail.get("messageId")),
                delivery_id=delivery_id,
                occurred_at=when,
                bounce_class=(
                    classify_bounce(diagnostic, reading.esp_class) if kind == "bounced" else None
                ),
                detail=f"{detail} ({diagnostic})" if detail and diagnostic else detail,
                raw_id=sns_id if index == 0 else f"{sns_id}:{index}",
                user_agent=as_str(reading.section.get("userAgent"))
                if kind in ("opened", "clicked")
                else None,
            )
        )
    return events


def _diagnostic(recipient: Mapping[str, Any]) -> str | None:
    parts = [as_str(recipient.get("status")), as_str(recipient.get("diagnosticCode"))]
    return " ".join(p for p in parts if p) or None
