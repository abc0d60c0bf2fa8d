"""What every ESP webhook parser returns: normalized tracking events, one vocabulary for all.

Each ESP module of this package (``postmark``, ``sendgrid``, ``mailgun``, ``resend``, ``ses``)
has a ``parse_webhook(headers, body, secret)`` that first verifies the request and then maps the
ESP's payload onto :class:`TrackingEvent` (a value of ``domain.tracking_events``, which
the database layer stores too); ``webhook_common`` holds what their verification and
parsing share, and ``webhooks.read_webhook`` picks the module by provider name. The kinds are:

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
from dataclasses import dataclass
from datetime import timedelta

from remarket_mailer.domain.tracking_events import (
    EVENT_KINDS,
    BounceClass,
    EventKind,
    TrackingEvent,
)
from remarket_mailer.errors import RemarketError

__all__ = [
    "EVENT_KINDS",
    "BounceClass",
    "EventKind",
    "OneTimeToken",
    "TrackingEvent",
    "WebhookBusyError",
    "WebhookReplayError",
    "WebhookSignatureError",
    "bounce_class_from_code",
    "classify_bounce",
]

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


@dataclass(frozen=True, slots=True)
class OneTimeToken:
    """A webhook signature's token that may be used once (Mailgun), and for how long to keep
    it: as long as the signature it came with can still verify."""

    provider: str
    token: str
    keep_for: timedelta
