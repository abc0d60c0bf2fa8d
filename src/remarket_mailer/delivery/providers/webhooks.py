"""What every ESP webhook parser returns: normalized tracking events, one vocabulary for all.

Each ESP module (``postmark``, ``sendgrid``, ``mailgun``, ``resend``, ``ses``) has a
``parse_webhook(headers, body, secret)`` that first verifies the request and then maps the
ESP's payload onto :class:`TrackingEvent`. The kinds are:

- ``delivered``: the receiving server accepted the message;
- ``deferred``: delivery is delayed, the ESP keeps retrying (not a bounce);
- ``bounced``: delivery failed for good; ``bounce_class`` says why (see :func:`classify_bounce`);
- ``complained``: the recipient marked the message as spam;
- ``opened``, ``clicked``: engagement (opens are unreliable: Apple MPP);
- ``unsubscribed``: the recipient unsubscribed through the ESP.

ESP events outside this vocabulary (``processed``, ``sent``, auto-replies, resubscribes) are
dropped by the parsers.

Errors::

    RemarketError
    ├── WebhookSignatureError   the request is not provably from the ESP: answer 401/403
    └── ValidationError         signed, but the body is not what the ESP documents: answer 400
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from remarket_mailer.domain.emails import normalize_email as canonical_email
from remarket_mailer.errors import RemarketError, ValidationError

EventKind = Literal[
    "delivered", "deferred", "bounced", "complained", "opened", "clicked", "unsubscribed"
]
BounceClass = Literal["hard", "soft", "policy"]

EVENT_KINDS: Final[tuple[EventKind, ...]] = (
    "delivered",
    "deferred",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "unsubscribed",
)

# RFC 3463 enhanced status code: class.subject.detail, class 2, 4 or 5.
_ENHANCED_CODE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")


class WebhookSignatureError(RemarketError):
    """A webhook request failed verification (bad or missing signature, stale timestamp,
    unknown SNS topic, untrusted certificate URL, or no secret configured)."""


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    """One thing that happened to one sent message, in our words rather than the ESP's."""

    kind: EventKind
    email: str
    """The recipient the event is about (lower-cased)."""
    provider: str
    """``postmark``, ``sendgrid``, ``mailgun``, ``resend`` or ``ses``."""
    provider_message_id: str | None
    """The id the ESP returned when it accepted the message (``Sent.provider_id``)."""
    delivery_id: str | None
    """Our delivery id, echoed back from the message's metadata/tags/custom args."""
    occurred_at: datetime
    """When it happened, timezone-aware."""
    bounce_class: BounceClass | None = None
    """For ``bounced``: hard (suppress now), soft (count it), policy (sender problem)."""
    detail: str | None = None
    """The ESP's reason or the SMTP diagnostic, for the operator; never shown to users."""
    raw_id: str | None = None
    """The ESP's id for this event: redeliveries of the same event carry the same one."""


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name``, matched without regard to case; None when absent."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, item in headers.items():
        if key.lower() == wanted:
            return item
    return None


def require_secret(secret: str, provider: str) -> None:
    """Raise WebhookSignatureError when no secret is configured: never accept unverified."""
    if not secret or not secret.strip():
        raise WebhookSignatureError(f"{provider}: no webhook secret configured, request refused")


def bounce_class_from_code(text: str | None) -> BounceClass | None:
    """Classify an RFC 3463 enhanced status code found anywhere in ``text``.

    5.7.x → ``policy`` (a problem with the sender, not the address); 5.2.2 and any 4.x.x →
    ``soft``; 5.1.x and 5.2.1 → ``hard``. Other codes, or no code, → None. Never raises.
    """
    if not text:
        return None
    match = _ENHANCED_CODE.search(text)
    if match is None:
        return None
    klass, subject, detail = match.groups()
    if klass == "4":
        return "soft"
    if klass != "5":
        return None
    if subject == "7":
        return "policy"
    if subject == "2" and detail == "2":
        return "soft"
    if subject == "1" or (subject == "2" and detail == "1"):
        return "hard"
    return None


def classify_bounce(diagnostic: str | None, esp_class: BounceClass | None) -> BounceClass | None:
    """The bounce class for an event: the enhanced status code when it says something,
    else the ESP's own classification (``esp_class``). Never raises.

    A specific code wins because ESPs label some sender-side rejections (5.7.x) as
    permanent bounces, and suppressing a good address for our own DMARC failure loses it.
    """
    return bounce_class_from_code(diagnostic) or esp_class


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from an ISO 8601 string or a Unix timestamp; naive means UTC.

    Returns None when ``value`` is missing or unreadable.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        if value.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), tz=UTC)
        parsed = datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_json(body: bytes, provider: str) -> Any:
    """Decode a JSON webhook body; raise ValidationError (field ``body``) when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"{provider}: webhook body is not JSON", field="body") from exc


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty dict (ESP fields are often optional)."""
    return value if isinstance(value, dict) else {}


def as_str(value: Any) -> str | None:
    """``value`` as a non-empty string, or None (ids sometimes arrive as numbers)."""
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value).strip()
    return text or None


def bare_message_id(value: Any) -> str | None:
    """A Message-ID without its angle brackets, so webhook ids match ``Sent.provider_id``."""
    text = as_str(value)
    return text.strip("<>") if text else None


def normalize_email(value: Any) -> str | None:
    """The address part of ``value`` (``Name <a@b>`` or ``a@b``) in the product's one spelling
    (``domain.emails.normalize_email``); None if empty."""
    text = as_str(value)
    if text is None:
        return None
    if "<" in text and text.endswith(">"):
        text = text[text.rindex("<") + 1 : -1]
    text = canonical_email(text)
    return text if "@" in text else None
