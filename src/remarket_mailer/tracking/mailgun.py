"""Mailgun webhooks (JSON): one ``event-data`` per POST, with a signature block in the body.

Webhooks carry ``signature{timestamp, token, signature}`` in the body:
HMAC-SHA256 keyed with the HTTP webhook signing key (not the API key) over
``timestamp + token``, hex. The signature does not cover the body, so a captured block would
verify with any body: a timestamp over 15 minutes old is refused, and each token is accepted
once (the caller remembers them, see :class:`MailgunWebhook`). The ``v:`` variables set by the
sending side (:mod:`remarket_mailer.delivery.providers.mailgun`) come back as
``user-variables``, ``delivery_id`` among them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from remarket_mailer.tracking.events import (
    BounceClass,
    EventKind,
    TrackingEvent,
    WebhookSignatureError,
    classify_bounce,
)
from remarket_mailer.tracking.webhook_common import (
    check_signed_at,
    load_json,
    normalize_email,
    require_secret,
)
from remarket_mailer.untrusted_json import as_dict, as_str, bare_message_id, parse_time

PROVIDER = "mailgun"

_TOKEN = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII that fits the token column

# Mailgun's own SDK refuses signatures older than 15 minutes; ahead allows for clock skew.
SIGNATURE_MAX_AGE_SECONDS = 900.0
SIGNATURE_MAX_AHEAD_SECONDS = 300.0
TOKEN_MEMORY = timedelta(seconds=SIGNATURE_MAX_AGE_SECONDS + SIGNATURE_MAX_AHEAD_SECONDS)
"""How long a used token must be remembered: as long as its signature can still be fresh."""

_SIMPLE_EVENTS: dict[str, EventKind] = {
    "delivered": "delivered",
    "opened": "opened",
    "clicked": "clicked",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
}
# A permanent ``failed`` whose reason names one of Mailgun's suppression lists: Mailgun dropped
# the message because the recipient previously unsubscribed or complained (its stats API counts
# these as ``failed.permanent.suppress-unsubscribe`` / ``suppress-complaint``, "recipients
# previously unsubscribed / complained"). That is the recipient's choice, so it suppresses here
# too; ``suppress-bounce`` (previously bounced) stays a hard bounce.
_SUPPRESSED_BY_MAILGUN: dict[str, EventKind] = {
    "suppress-unsubscribe": "unsubscribed",
    "suppress-complaint": "complained",
}


@dataclass(frozen=True, slots=True)
class MailgunWebhook:
    """A verified Mailgun webhook: its events and the one-time token of its signature."""

    events: list[TrackingEvent]
    token: str
    """Accept this token once: keep it for :data:`TOKEN_MEMORY` and refuse it when seen again."""


def verify_signature(payload: Mapping[str, Any], secret: str, *, now: float | None = None) -> str:
    """Check the body's ``signature`` block with the webhook signing key ``secret``; return
    its token, which the caller must accept only once (see :data:`TOKEN_MEMORY`).

    Raises WebhookSignatureError when the block is missing, malformed or the HMAC does not
    match; WebhookReplayError when its timestamp is over 15 minutes before ``now`` (default:
    the current time) or over 5 minutes after it.
    """
    require_secret(secret, PROVIDER)
    block = as_dict(payload.get("signature"))
    timestamp = as_str(block.get("timestamp"))
    token = as_str(block.get("token"))
    signature = as_str(block.get("signature"))
    if not (timestamp and token and signature):
        raise WebhookSignatureError("mailgun: signature block missing")
    if not _TOKEN.fullmatch(token):
        raise WebhookSignatureError("mailgun: the signature token is not a Mailgun token")
    expected = hmac.new(
        secret.strip().encode("utf-8"),
        f"{timestamp}{token}".encode("utf-8", "surrogatepass"),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(expected, signature.lower().encode("ascii", "replace").decode()):
        raise WebhookSignatureError("mailgun: signature does not verify")
    check_signed_at(
        timestamp,
        time.time() if now is None else now,
        max_age=SIGNATURE_MAX_AGE_SECONDS,
        max_ahead=SIGNATURE_MAX_AHEAD_SECONDS,
        provider=PROVIDER,
    )
    return token


def read_webhook(
    headers: Mapping[str, str], body: bytes, secret: str, *, now: float | None = None
) -> MailgunWebhook:
    """Verify a Mailgun webhook and normalize it, keeping the signature's one-time token.

    Raises as :func:`parse_webhook`.
    """
    payload = load_json(body, PROVIDER)
    if not isinstance(payload, dict):
        raise WebhookSignatureError("mailgun: body is not a JSON object")
    token = verify_signature(payload, secret, now=now)
    event = _event(as_dict(payload.get("event-data")))
    return MailgunWebhook([event] if event is not None else [], token)


def parse_webhook(
    headers: Mapping[str, str], body: bytes, secret: str, *, now: float | None = None
) -> list[TrackingEvent]:
    """Verify a Mailgun webhook (``secret`` = HTTP webhook signing key) and normalize it.

    One POST carries one ``event-data``. ``failed`` with severity ``temporary`` is
    ``deferred``; with ``permanent`` it is ``bounced``. Raises ValidationError (field ``body``)
    for a body that is not JSON or nests too deep, WebhookSignatureError for one without a valid
    signature, WebhookReplayError for a stale one. ``now`` (Unix seconds) replaces the clock in
    tests. The signature's token is not remembered here: :func:`read_webhook` returns it.
    """
    return read_webhook(headers, body, secret, now=now).events


def _event(data: Mapping[str, Any]) -> TrackingEvent | None:
    name = str(data.get("event", ""))
    status = as_dict(data.get("delivery-status"))
    detail = as_str(status.get("message")) or as_str(status.get("description"))
    bounce_class: BounceClass | None = None
    kind: EventKind
    if name in _SIMPLE_EVENTS:
        kind = _SIMPLE_EVENTS[name]
        if kind == "clicked":
            detail = as_str(data.get("url"))
    elif name == "failed" and str(data.get("reason", "")) in _SUPPRESSED_BY_MAILGUN:
        reason = str(data.get("reason"))
        kind = _SUPPRESSED_BY_MAILGUN[reason]
        detail = f"{reason}: {detail}" if detail else reason
    elif name == "failed":
        if data.get("severity") == "temporary":
            kind = "deferred"
        else:
            kind = "bounced"
            reason = str(data.get("reason", ""))
            fallback: BounceClass | None = (
                "hard" if reason in ("bounce", "suppress-bounce") else None
            )
            diagnostic = " ".join(
                filter(
                    None,
                    (
                        as_str(status.get("bounce-code")),
                        as_str(status.get("enhanced-code")),
                        as_str(status.get("message")),
                        as_str(status.get("description")),
                    ),
                )
            )
            bounce_class = classify_bounce(diagnostic, fallback)
            detail = f"{reason}: {detail}" if reason and detail else (reason or detail)
    else:
        return None
    email_address = normalize_email(data.get("recipient"))
    occurred_at = parse_time(data.get("timestamp"))
    if email_address is None or occurred_at is None:
        return None
    message_headers = as_dict(as_dict(data.get("message")).get("headers"))
    event_id = as_str(data.get("id"))
    return TrackingEvent(
        kind=kind,
        email=email_address,
        provider=PROVIDER,
        provider_message_id=bare_message_id(message_headers.get("message-id")),
        delivery_id=as_str(as_dict(data.get("user-variables")).get("delivery_id")),
        occurred_at=occurred_at,
        bounce_class=bounce_class,
        detail=detail,
        # Mailgun's event id is only unique within a day: the timestamp makes it unique.
        raw_id=f"{event_id}:{data.get('timestamp')}" if event_id else None,
        user_agent=as_str(as_dict(data.get("client-info")).get("user-agent"))
        if kind in ("opened", "clicked")
        else None,
    )
