"""JSON from outside (API bodies, shop and ESP webhooks), parsed without letting its shape hurt us.

The stdlib decoder recurses once per nesting level: 50,000 ``[`` raise ``RecursionError`` (a 500
where a 400 belongs), and a value that parsed deep still breaks every recursive consumer after it
(pydantic, ``json.dumps``, the database's JSON writer). orjson refuses nesting over 1,024 without
recursing in Python, but reads an integer past 64 bits as a float. So: orjson, unless the text
holds a run of 19 digits (then the stdlib, which reads it exactly), and a depth check over the
result. No event, webhook or
request we accept nests anywhere near ``MAX_DEPTH``.
"""

from __future__ import annotations

import json
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
