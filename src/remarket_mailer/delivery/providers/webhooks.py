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
    │   └── WebhookReplayError  signed, but stale or already used: 401 (Mailgun: 406)
    ├── WebhookBusyError        cannot be verified right now: answer 503 + Retry-After
    └── ValidationError         signed, but the body is not what the ESP documents: answer 400
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from remarket_mailer import untrusted_json
from remarket_mailer.domain.emails import normalize_email as canonical_email
from remarket_mailer.errors import RemarketError, ValidationError

EventKind = Literal[
    "delivered", "deferred", "bounced", "complained", "opened", "clicked", "unsubscribed", "failed"
]
"""``failed``: the ESP accepted the request, then never sent the message (Resend
``email.failed``: quota, key or domain problems). Nothing is known about the address."""
BounceClass = Literal["hard", "soft", "policy"]

EVENT_KINDS: Final[tuple[EventKind, ...]] = (
    "delivered",
    "deferred",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "unsubscribed",
    "failed",
)

MAX_ID_LENGTH: Final = 255
"""The size of the id columns (event ids, message ids): a longer id cannot be one we stored."""
MAX_DETAIL_LENGTH: Final = 2000
_MAX_DELIVERY_ID: Final = 2**63 - 1  # BIGINT
# Unix seconds as ASCII digits: "²".isdigit() is True and 400 digits overflow a float.
_UNIX_SECONDS = re.compile(r"[0-9]{1,11}")
# Control characters, and lone surrogates (JSON "\ud800" parses, but no database encodes it).
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")

# RFC 3463 enhanced status code: class.subject.detail, class 2, 4 or 5.
_ENHANCED_CODE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")


class WebhookSignatureError(RemarketError):
    """A webhook request failed verification (bad or missing signature, stale timestamp,
    unknown SNS topic, untrusted certificate URL, or no secret configured)."""


class WebhookReplayError(WebhookSignatureError):
    """A request signed by the ESP, but not now: its signature timestamp is outside the window
    the ESP's scheme allows, or (Mailgun) its one-time token was already used. Whoever sends
    it replays a request they saw; nothing in it may be applied."""

    def __init__(self, message: str, code: str = "stale_signature") -> None:
        super().__init__(message)
        self.code = code
        """``stale_signature`` or ``replayed``: the error code the API answers with."""


class WebhookBusyError(RemarketError):
    """The request may be genuine but cannot be checked now (e.g. too many unknown SNS
    certificates to download this minute): answer 503 with ``Retry-After`` so the ESP retries."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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


def check_signed_at(
    value: str | None, now: float, *, max_age: float, max_ahead: float, provider: str
) -> int:
    """The Unix time a webhook signature was made, read from ``value`` (ASCII digits only).

    Raises WebhookSignatureError when ``value`` is not Unix seconds, WebhookReplayError when it
    is more than ``max_age`` seconds before ``now`` or more than ``max_ahead`` after it.
    """
    text = (value or "").strip()
    if not _UNIX_SECONDS.fullmatch(text):
        raise WebhookSignatureError(f"{provider}: the signature timestamp is not Unix seconds")
    signed_at = int(text)
    if signed_at < now - max_age:
        raise WebhookReplayError(
            f"{provider}: the signature is {int(now - signed_at)} s old, "
            f"over the {int(max_age)} s the signature stays valid"
        )
    if signed_at > now + max_ahead:
        raise WebhookReplayError(
            f"{provider}: the signature timestamp is {int(signed_at - now)} s in the future"
        )
    return signed_at


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO 8601 string or a Unix timestamp; naive means UTC.

    Returns None when ``value`` is missing or unreadable, including times no datetime holds
    (``1e400``, 400 digits, ``9999-12-31T23:59:59-14:00``, NaN).
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(float(value), tz=UTC)
        if not isinstance(value, str) or not value:
            return None
        if value.isascii() and value.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), tz=UTC)
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def delivery_id_number(value: str | None) -> int | None:
    """Our delivery id in ``value`` as a number; None when ``value`` cannot be one of ours
    (not ASCII digits, such as ``"²"``, or beyond a BIGINT). Never raises."""
    if not value or not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if number <= _MAX_DELIVERY_ID else None


def storable_id(value: str | None) -> str | None:
    """``value`` when it fits an id column (at most 255 characters, no control characters or
    lone surrogates), else None: such an id cannot be one we stored, so it matches nothing."""
    if value is None or len(value) > MAX_ID_LENGTH or _CONTROL.search(value):
        return None
    return value


def storable_detail(value: str | None) -> str | None:
    """``value`` without NUL characters (PostgreSQL text cannot hold them) and with lone
    surrogates (no database encodes them) as U+FFFD, cut to 2,000 characters."""
    if not value:
        return None
    return _SURROGATE.sub("\ufffd", value.replace("\x00", ""))[:MAX_DETAIL_LENGTH] or None


def load_json(body: bytes, provider: str) -> Any:
    """Decode a JSON webhook body; raise ValidationError (field ``body``) when it is not JSON
    or nests deeper than any ESP payload does (without recursing, so 50,000 ``[`` are a
    ValidationError, not a RecursionError)."""
    try:
        return untrusted_json.loads(body)
    except ValidationError as exc:
        raise ValidationError(f"{provider}: {exc}", field="body") from None


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
    (``domain.emails.normalize_email``); None if it is empty or cannot be an address (no ``@``,
    over 254 characters, spaces or control characters)."""
    text = as_str(value)
    if text is None:
        return None
    if "<" in text and text.endswith(">"):
        text = text[text.rindex("<") + 1 : -1]
    text = canonical_email(text)
    # An address is at most 254 characters (RFC 5321) and has no spaces or control characters.
    if "@" not in text or len(text) > 254 or _CONTROL.search(text) or " " in text:
        return None
    return text
