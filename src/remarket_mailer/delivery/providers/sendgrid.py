"""SendGrid v3 Mail Send: one ``POST /v3/mail/send`` per message, and the Event Webhook parser.

SendGrid's batch form (personalizations) shares one body between recipients, and every
remarketing email has its own body, so each message is its own request (run on the provider's
bounded thread pool). 202 Accepted with an ``X-Message-Id`` header is ``Sent(X-Message-Id)``;
the events' ``sg_message_id`` starts with that id followed by a dot, and the parser reports the
part before the first dot so both sides match. ``custom_args`` (in the personalization) carry
``delivery_id`` and the other tags; SendGrid echoes them as top-level keys of each event. The
``workflow`` tag becomes a category. 429 waits until ``X-RateLimit-Reset`` (epoch seconds).
SendGrid documents no idempotency key: a retry after a timeout may send twice.

401 (the API key was refused) and 403 (the key lacks the ``mail.send`` permission, or the From
address matches no verified Sender Identity) are account or configuration answers: a
``ProviderFault`` (messages kept, provider paused). Other 4xx (a malformed request) stay
permanent.

Webhooks are signed with ECDSA P-256 / SHA-256 over ``timestamp + raw body``; the secret is the
base64 verification key shown in SendGrid's Mail Settings (a DER public key; PEM also works). A
signed timestamp more than 10 minutes from now is refused, so a captured batch cannot be
replayed later.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from remarket_mailer.delivery.base import OutboundMessage, ProviderFault, SendResult, Sent
from remarket_mailer.delivery.providers.http_base import (
    ApiRequest,
    HttpProvider,
    clean_headers,
    clean_subject,
    message_tags,
    parse_retry_after,
    split_address,
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

PROVIDER = "sendgrid"
DEFAULT_BASE_URL = "https://api.sendgrid.com"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
WEBHOOK_TOLERANCE_SECONDS = 600.0


def _address_object(value: str) -> dict[str, str]:
    name, address = split_address(value)
    return {"email": address, "name": name} if name else {"email": address}


class SendGridProvider(HttpProvider):
    """Sends each message with its own Mail Send request; see the module docstring."""

    name = PROVIDER
    max_batch = 100

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        concurrency: int = 4,
    ) -> None:
        super().__init__(
            base_url, transport=transport, client=client, timeout=timeout, concurrency=concurrency
        )
        self._api_key = api_key

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def build_request(self, message: OutboundMessage) -> ApiRequest:
        tags = message_tags(message)
        personalization: dict[str, Any] = {
            "to": [_address_object(message.to_addr)],
            "custom_args": tags,
        }
        headers = clean_headers(message)
        if headers:
            personalization["headers"] = headers
        content = []
        if message.text:
            content.append({"type": "text/plain", "value": message.text})
        if message.html:
            content.append({"type": "text/html", "value": message.html})
        payload: dict[str, Any] = {
            "personalizations": [personalization],
            "from": _address_object(message.from_addr),
            "subject": clean_subject(message),
            "content": content,
        }
        if message.reply_to:
            payload["reply_to"] = _address_object(message.reply_to)
        if tags.get("workflow"):
            payload["categories"] = [tags["workflow"][:255]]
        return ApiRequest("POST", "/v3/mail/send", json_body=payload)

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> SendResult:
        provider_id = response.headers.get("x-message-id")
        if not provider_id:
            raise ValueError("202 without X-Message-Id")
        return Sent(provider_id)

    def error_message(self, response: httpx.Response) -> str:
        try:
            errors = as_dict(response.json()).get("errors")
        except ValueError:
            errors = None
        if isinstance(errors, list) and errors:
            return "; ".join(
                f"{as_dict(e).get('field') or '-'}: {as_dict(e).get('message')}" for e in errors
            )[:300]
        return super().error_message(response)

    def error_result(self, response: httpx.Response) -> SendResult:
        if response.status_code == 403:
            return ProviderFault(
                f"sendgrid HTTP 403: {self.error_message(response)} (check the API key's "
                "mail.send permission and that the From address is a verified Sender Identity)",
                "account_forbidden",
            )
        return super().error_result(response)

    def retry_after(self, response: httpx.Response) -> float | None:
        reset = response.headers.get("x-ratelimit-reset")
        if reset:
            try:
                return max(0.0, float(reset) - time.time())
            except ValueError:
                pass
        return parse_retry_after(response.headers.get("retry-after"))


# -- webhooks --------------------------------------------------------------------------------

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
    )
