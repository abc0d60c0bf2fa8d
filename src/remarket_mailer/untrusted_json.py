"""JSON from outside (API bodies, shop and ESP webhooks), parsed without letting its shape hurt us.

The stdlib decoder recurses once per nesting level: 50,000 ``[`` raise ``RecursionError`` (a 500
where a 400 belongs), and a value that parsed deep still breaks every recursive consumer after it
(pydantic, ``json.dumps``, the database's JSON writer). orjson refuses nesting over 1,024 without
recursing in Python, but reads an integer past 64 bits as a float. So: orjson, unless the text
holds a run of 19 digits (then the stdlib, which reads it exactly), and a depth check over the
result. No event, webhook or
request we accept nests anywhere near ``MAX_DEPTH``.

The readers below (:func:`as_dict`, :func:`as_str`, :func:`bare_message_id`, :func:`parse_time`)
take one value out of such a document without trusting its type: the ESPs' send responses
(``delivery/providers``) and their webhooks (``tracking``) both use them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson

from remarket_mailer.errors import ValidationError

MAX_DEPTH = 64

# Digits as zeros, to find a run of 19 (an integer past 64 bits) with one substring search.
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data``; raise ``ValidationError`` if it is not JSON, not UTF-8 or nests too deep."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _LONG_NUMBER in raw.translate(_DIGITS_AS_ZEROS):
        value = _stdlib_loads(data)
    else:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if "recursion" in str(exc).lower():
                raise _too_deep(max_depth) from None
            value = _stdlib_loads(data)  # NaN, 1e400 and lone surrogates: the stdlib reads them
    if _depth_over(value, max_depth):
        raise _too_deep(max_depth)
    return value


def _stdlib_loads(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise _too_deep(MAX_DEPTH) from None
    except (ValueError, UnicodeDecodeError) as exc:
        # ValueError also covers ints over the interpreter's 4,300-digit limit.
        raise ValidationError(f"the body is not valid JSON: {exc}") from None


def _depth_over(value: Any, max_depth: int) -> bool:
    """True when ``value`` nests over ``max_depth`` containers; iterative, so never recurses."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _too_deep(max_depth: int) -> ValidationError:
    return ValidationError(f"the JSON nests more than {max_depth} levels deep")


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
