"""Mailgun v3 messages: one form-encoded ``POST /v3/<domain>/messages`` per message, and the
webhook parser.

Mailgun's batch form (``recipient-variables``) shares one template between recipients, so
each message is its own request (run on the provider's bounded thread pool). Authentication is
HTTP Basic ``api:<API key>``; ``api.mailgun.net`` is the US region, ``api.eu.mailgun.net`` the EU
one. Headers go in as ``h:<Name>``, our tags as ``v:<name>`` (echoed in events as
``user-variables``), the ``workflow`` tag as ``o:tag``. 200 ``{"id": "<…>"}`` is ``Sent(id)``
without the angle brackets, which is also what the parser reports for events. A 429 names when
to come back ("try again after <date>"); that date, or ``Retry-After``, becomes ``retry_after``.
Mailgun documents no idempotency key: a retry after a timeout may send twice.

Account or configuration answers are a ``ProviderFault`` (messages kept, provider paused):
401 (the API key was refused), 403 (the account or domain may not send this way: a sandbox
domain's unauthorised recipients, a disabled account) and 404 (the sending domain in the URL is
not on the account, or the URL names the other region: ``api.eu.mailgun.net`` holds EU domains).
Mailgun's docs say a 404 for a domain just added may pass (eventually consistent): the pause
retries it.

Webhooks (JSON) carry ``signature{timestamp, token, signature}`` in the body:
HMAC-SHA256 keyed with the HTTP webhook signing key (not the API key) over
``timestamp + token``, hex. The signature does not cover the body, so a captured block would
verify with any body: a timestamp over 15 minutes old is refused, and each token is accepted
once (the caller remembers them, see :class:`MailgunWebhook`).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from remarket_mailer.delivery.base import OutboundMessage, ProviderFault, SendResult, Sent
from remarket_mailer.delivery.providers.http_base import (
    ApiRequest,
    HttpProvider,
    clean_headers,
    clean_subject,
    format_address,
    message_tags,
    parse_retry_after,
)
from remarket_mailer.delivery.providers.webhooks import (
    BounceClass,
    EventKind,
    TrackingEvent,
    WebhookSignatureError,
    as_dict,
    as_str,
    bare_message_id,
    check_signed_at,
    classify_bounce,
    load_json,
    normalize_email,
    parse_time,
    require_secret,
)

PROVIDER = "mailgun"
US_BASE_URL = "https://api.mailgun.net"
EU_BASE_URL = "https://api.eu.mailgun.net"

_TRY_AGAIN_AFTER = re.compile(r"try again after (.+?)\s*$", re.IGNORECASE)
_TOKEN = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII that fits the token column

# Mailgun's own SDK refuses signatures older than 15 minutes; ahead allows for clock skew.
SIGNATURE_MAX_AGE_SECONDS = 900.0
SIGNATURE_MAX_AHEAD_SECONDS = 300.0
TOKEN_MEMORY = timedelta(seconds=SIGNATURE_MAX_AGE_SECONDS + SIGNATURE_MAX_AHEAD_SECONDS)
"""How long a used token must be remembered: as long as its signature can still be fresh."""


class MailgunProvider(HttpProvider):
    """Sends each message with its own Messages API request; see the module docstring."""

    name = PROVIDER
    max_batch = 100

    def __init__(
        self,
        api_key: str,
        domain: str,
        *,
        base_url: str = US_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        concurrency: int = 4,
    ) -> None:
        super().__init__(
            base_url, transport=transport, client=client, timeout=timeout, concurrency=concurrency
        )
        self.domain = domain
        self._auth = "Basic " + base64.b64encode(f"api:{api_key}".encode()).decode("ascii")

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self._auth}

    def build_request(self, message: OutboundMessage) -> ApiRequest:
        tags = message_tags(message)
        form: list[tuple[str, str]] = [
            ("from", format_address(message.from_addr)),
            ("to", format_address(message.to_addr)),
            ("subject", clean_subject(message)),
        ]
        if message.text:
            form.append(("text", message.text))
        if message.html:
            form.append(("html", message.html))
        if message.reply_to:
            form.append(("h:Reply-To", format_address(message.reply_to)))
        form.extend((f"h:{name}", value) for name, value in clean_headers(message).items())
        form.extend((f"v:{name}", value) for name, value in tags.items())
        if tags.get("workflow"):
            form.append(("o:tag", tags["workflow"]))
        return ApiRequest("POST", f"/v3/{self.domain}/messages", form=form)

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> SendResult:
        provider_id = bare_message_id(as_dict(response.json()).get("id"))
        if not provider_id:
            raise ValueError("200 without id")
        return Sent(provider_id)

    def error_result(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        text = f"mailgun HTTP {status}: {self.error_message(response)}"
        if status == 403:
            return ProviderFault(
                f"{text} (the account or domain {self.domain} may not send: check it in Mailgun)",
                "account_forbidden",
            )
        if status == 404:
            return ProviderFault(
                f"{text} (domain {self.domain} not found: check the domain and the region "
                "(api.mailgun.net / api.eu.mailgun.net) in REMARKET_PROVIDER_URL)",
                "domain_not_found",
            )
        return super().error_result(response)

    def retry_after(self, response: httpx.Response) -> float | None:
        header_value = parse_retry_after(response.headers.get("retry-after"))
        if header_value is not None:
            return header_value
        match = _TRY_AGAIN_AFTER.search(self.error_message(response))
        if match is None:
            return None
        text = match.group(1).rstrip(".")
        when = parse_time(text)
        if when is None:
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - time.time())


# -- webhooks --------------------------------------------------------------------------------

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
    )
