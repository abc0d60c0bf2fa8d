"""Helpers shared by the shop integrations: signatures, headers, ids, and field coercion.

Every coercion helper raises :class:`remarket_mailer.errors.ValidationError` naming the field,
so a malformed shop payload never surfaces as ``KeyError`` or ``TypeError``. Optional fields
that are present but unusable (an invalid email, a locale we cannot read) are dropped instead,
so one odd field does not make the shop retry a delivery we can never accept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, TypeVar

import pydantic
from pydantic import TypeAdapter

from remarket_mailer.errors import ValidationError
from remarket_mailer.schemas import Email, Locale, Url, parse_event

MAX_ID_LENGTH = 255
MAX_NAME_LENGTH = 255
MAX_ITEMS = 500
MAX_DISCOUNT_CODES = 20
MAX_DISCOUNT_CODE_LENGTH = 64
_MAX_MONEY = Decimal(10) ** 12
_CENT = Decimal("0.01")

_EMAIL: TypeAdapter[str] = TypeAdapter(Email)
_LOCALE: TypeAdapter[str] = TypeAdapter(Locale)
_URL: TypeAdapter[Any] = TypeAdapter(Url)


def normalise_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return ``headers`` with lower-case names and stripped values (HTTP/2 lowercases them)."""
    return {str(name).strip().lower(): str(value).strip() for name, value in headers.items()}


def verify_base64_hmac_sha256(
    raw_body: bytes, header_value: str | None, secrets: Sequence[str]
) -> bool:
    """True when ``header_value`` is base64(HMAC-SHA256(raw_body, secret)) for any secret.

    Several secrets are accepted so a rotation can overlap; empty secrets are ignored, so a
    missing setting can never verify anything. Comparison is constant-time on the raw digests.
    """
    if not header_value:
        return False
    try:
        claimed = base64.b64decode(header_value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    matches = [
        hmac.compare_digest(
            hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest(), claimed
        )
        for secret in secrets
        if secret
    ]
    return any(matches)


def event_id(*parts: str) -> str:
    """A deterministic event_id from ``parts``; hashed when it would exceed 255 characters."""
    joined = ":".join(parts)
    if len(joined) <= MAX_ID_LENGTH:
        return joined
    return f"{parts[0]}:sha256:{hashlib.sha256(joined.encode('utf-8')).hexdigest()}"


def as_mapping(value: Any, field: str) -> Mapping[str, Any]:
    """``value`` as a JSON object; raises ValidationError when it is anything else."""
    if not isinstance(value, Mapping):
        raise ValidationError(f"{field} must be a JSON object", field=field)
    return value


def optional_mapping(value: Any, field: str) -> Mapping[str, Any] | None:
    """``value`` as a JSON object, or None when it is null/absent."""
    return None if value is None else as_mapping(value, field)


def as_list(value: Any, field: str) -> list[Any]:
    """``value`` as a JSON array (null counts as empty); raises ValidationError otherwise."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(f"{field} must be a JSON array", field=field)
    return value


def identifier(value: Any) -> str | None:
    """A shop identifier (int or non-empty string) as a string; None when absent or unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value.strip()) <= MAX_ID_LENGTH:
        return value.strip()
    return None


def required_identifier(payload: Mapping[str, Any], key: str, what: str) -> str:
    """``payload[key]`` as a string id; raises ValidationError naming ``key`` when missing."""
    found = identifier(payload.get(key))
    if found is None:
        raise ValidationError(f"{what} payload has no usable {key!r}", field=key)
    return found


def text(value: Any, max_length: int = MAX_NAME_LENGTH) -> str | None:
    """A non-empty stripped string cut to ``max_length``; None for anything else."""
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    return stripped[:max_length] if stripped else None


def email(value: Any) -> str | None:
    """The normalised address, or None when ``value`` is not a valid email address."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return _EMAIL.validate_python(value.strip())
    except pydantic.ValidationError:
        return None


def locale(value: Any) -> str | None:
    """``value`` when it reads as a locale such as ``en`` or ``pt-BR``; None otherwise."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return _LOCALE.validate_python(value.strip())
    except pydantic.ValidationError:
        return None


def url(value: Any) -> str | None:
    """``value`` when it is an http(s) URL we can store; None otherwise."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return str(_URL.validate_python(value.strip()))
    except pydantic.ValidationError:
        return None


def money(value: Any, field: str) -> str:
    """A non-negative amount as a decimal string with two places (``"19.99"``).

    Shops send strings (``"421.88"``) or, for WooCommerce line prices, JSON numbers; both are
    accepted. Raises ValidationError for anything that is not a finite, non-negative amount.
    """
    if isinstance(value, bool) or value is None:
        raise ValidationError(f'{field} must be an amount like "19.99"', field=field)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"{field} must be a finite amount", field=field)
        # repr of a float is its shortest round-tripping decimal: 21.99, not 21.989999...
        value = repr(value)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise ValidationError(f'{field} must be an amount like "19.99"', field=field)
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise ValidationError(f'{field} must be an amount like "19.99"', field=field) from None
    if not amount.is_finite() or amount < 0 or amount >= _MAX_MONEY:
        raise ValidationError(f"{field} must be a finite, non-negative amount", field=field)
    return str(amount.quantize(_CENT, rounding=ROUND_HALF_UP))


def currency(value: Any, field: str = "currency") -> str:
    """A three-letter currency code in upper case; raises ValidationError when missing."""
    if not isinstance(value, str) or len(value.strip()) != 3:
        raise ValidationError(f"{field} must be a three-letter currency code", field=field)
    return value.strip().upper()


def quantity(value: Any, field: str) -> int:
    """A line quantity as an int (JSON int or digit string); raises ValidationError otherwise."""
    if isinstance(value, bool):
        raise ValidationError(f"{field} must be a whole number", field=field)
    if isinstance(value, int):
        return value
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    raise ValidationError(f"{field} must be a whole number", field=field)


def timestamp(value: Any, field: str) -> str | None:
    """An ISO 8601 time as RFC 3339 with an offset; None when absent.

    A time without an offset is read as UTC: WooCommerce's ``*_gmt`` fields carry none.
    Raises ValidationError for a value that is present but not a time.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be an ISO 8601 time", field=field)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(f"{field} must be an ISO 8601 time", field=field) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def contact(external_id: str | None, address: str | None) -> dict[str, str] | None:
    """Our contact reference, or None when there is neither an id nor an email."""
    ref = {"external_id": external_id, "email": address}
    cleaned = {key: value for key, value in ref.items() if value is not None}
    return cleaned or None


def discount_codes(codes: list[str]) -> list[str]:
    """Codes that fit our contract (at most 20, each at most 64 characters), order kept.

    An over-long code is dropped rather than refused: losing the order would be worse.
    """
    kept: list[str] = []
    for code in codes:
        if len(code) <= MAX_DISCOUNT_CODE_LENGTH and code not in kept:
            kept.append(code)
    return kept[:MAX_DISCOUNT_CODES]


def compact(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without the keys whose value is None."""
    return {key: value for key, value in data.items() if value is not None}


def checked(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return ``events`` after validating each against our contract.

    A pydantic error becomes our ValidationError naming the first offending field, so callers
    only ever handle one error type for a payload they cannot use.
    """
    for event in events:
        try:
            parse_event(event)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"][1:]) or None
            raise ValidationError(
                f"{event['type']} built from the webhook is invalid: {first['msg']}",
                field=where,
            ) from None
    return events


D = TypeVar("D")


def dispatch(
    topic: str,
    payload: Mapping[str, Any],
    headers: Mapping[str, str],
    handlers: Mapping[str, Callable[[Mapping[str, Any], D], list[dict[str, Any]]]],
    delivery: Callable[[str, dict[str, str]], D],
) -> list[dict[str, Any]]:
    """The shared shape of a shop's ``map_webhook``: pick the topic's handler (none: no
    events), give it the body and the delivery's context, check what it returns."""
    normalised_topic = topic.strip().lower()
    handler = handlers.get(normalised_topic)
    if handler is None:
        return []
    body = as_mapping(payload, "payload")
    return checked(handler(body, delivery(normalised_topic, normalise_headers(headers))))
