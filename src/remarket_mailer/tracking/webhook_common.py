"""What the ESP webhook parsers of this package share: finding headers, refusing requests
without a configured secret, checking signature timestamps, reading the body as JSON and the
recipient's address out of it.

Reading single values out of the JSON (``as_dict``, ``as_str``, ``parse_time``, …) is in
:mod:`remarket_mailer.untrusted_json`: the sending side reads the ESPs' responses with it too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from remarket_mailer import untrusted_json
from remarket_mailer.domain.emails import normalize_email as canonical_email
from remarket_mailer.errors import ValidationError
from remarket_mailer.tracking.events import WebhookReplayError, WebhookSignatureError

# Unix seconds as ASCII digits: "²".isdigit() is True and 400 digits overflow a float.
_UNIX_SECONDS = re.compile(r"[0-9]{1,11}")
# Control characters, and lone surrogates (JSON "\ud800" parses, but no database encodes it).
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


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


def load_json(body: bytes, provider: str) -> Any:
    """Decode a JSON webhook body; raise ValidationError (field ``body``) when it is not JSON
    or nests deeper than any ESP payload does (without recursing, so 50,000 ``[`` are a
    ValidationError, not a RecursionError)."""
    try:
        return untrusted_json.loads(body)
    except ValidationError as exc:
        raise ValidationError(f"{provider}: {exc}", field="body") from None


def normalize_email(value: Any) -> str | None:
    """The address part of ``value`` (``Name <a@b>`` or ``a@b``) in the product's one spelling
    (``domain.emails.normalize_email``); None if it is empty or cannot be an address (no ``@``,
    over 254 characters, spaces or control characters)."""
    text = untrusted_json.as_str(value)
    if text is None:
        return None
    if "<" in text and text.endswith(">"):
        text = text[text.rindex("<") + 1 : -1]
    text = canonical_email(text)
    # An address is at most 254 characters (RFC 5321) and has no spaces or control characters.
    if "@" not in text or len(text) > 254 or _CONTROL.search(text) or " " in text:
        return None
    return text
