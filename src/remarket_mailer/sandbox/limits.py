"""The sandbox's limits and the arithmetic that checks them: how big a value an operator, a
``%``/``str.format`` field or a string method would build, worked out before it is built."""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedFormatter
from markupsafe import EscapeFormatter

MAX_STRING = 1_000_000
"""Longest string (characters, or bytes) one operation may build."""
MAX_ITEMS = 100_000
"""Longest list or tuple one operation may build (Jinja's own cap on ``range``)."""
MAX_INT_BITS = 4096
"""Largest integer ``*`` and ``**`` may build (about 1,233 decimal digits)."""
MAX_EXPONENT = 64
"""Largest exponent ``**`` accepts."""
MAX_OUTPUT = 5_000_000
"""Longest rendered part (subject, preheader, HTML or text) in characters."""


class GrowthError(SecurityError):
    """An operation would build a value over the sandbox's limits; the message says which."""


def refuse(what: str, size: int, limit: int, unit: str = "characters") -> GrowthError:
    return GrowthError(f"{what} would build {size:,} {unit}; the sandbox allows {limit:,}")


def check_length(size: int, what: str) -> None:
    """Raise GrowthError when a string of ``size`` characters is over ``MAX_STRING``."""
    if size > MAX_STRING:
        raise refuse(what, size, MAX_STRING)


def weight(value: Any, budget: int = MAX_STRING) -> int:
    """About how many characters ``str(value)`` writes, counted without building it; stops
    counting once over ``budget`` (so a list of a million shared strings costs little)."""
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    if isinstance(value, list | tuple | set | frozenset | dict):
        total = 2
        for item in value.items() if isinstance(value, dict) else value:
            total += weight(item, budget - total) + 2
            if total > budget:
                break
        return total
    return 8  # numbers, None, dates...: small


def int_arg(value: Any) -> int:
    return value if isinstance(value, int) else 0


# -- operators --------------------------------------------------------------------------------


def _check_repeat(seq: Any, count: Any) -> None:
    if not isinstance(count, int) or count <= 0:
        return
    if isinstance(seq, str | bytes | bytearray):
        check_length(len(seq) * count, "repeating a string")
    elif isinstance(seq, list | tuple):
        if len(seq) * count > MAX_ITEMS:
            raise refuse("repeating a list", len(seq) * count, MAX_ITEMS, "items")
        check_length(weight(seq) * count, "repeating a list")


def check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        _check_repeat(left, right)
        _check_repeat(right, left)
        if type(left) is int and type(right) is int:
            bits = left.bit_length() + right.bit_length()
            if bits > MAX_INT_BITS:
                raise refuse("multiplying", bits, MAX_INT_BITS, "bits")
    elif operator == "**":
        if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise GrowthError(f"exponent too large (the sandbox allows up to {MAX_EXPONENT})")
        if type(left) is int and type(right) is int and right > 0:
            bits = left.bit_length() * right
            if bits > MAX_INT_BITS:
                raise refuse("a power", bits, MAX_INT_BITS, "bits")
    elif operator == "+":
        if isinstance(left, str | bytes | bytearray) and isinstance(right, str | bytes):
            check_length(len(left) + len(right), "joining two strings")
        elif (
            isinstance(left, list | tuple)
            and isinstance(right, list | tuple)
            and len(left) + len(right) > MAX_ITEMS
        ):
            raise refuse("joining two lists", len(left) + len(right), MAX_ITEMS, "items")
    elif operator == "%" and isinstance(left, str | bytes):
        check_printf(left if isinstance(left, str) else left.decode("latin-1"), right)


# %[(name)][flags][width][.precision][length]type
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.S)


def check_printf(template: str, args: Any) -> None:
    """Raise GrowthError when ``template % args`` would write a field wider (or more precise)
    than ``MAX_STRING``: ``'%300000000s' % 'a'``, ``'%.300000000f' % 1``, ``'%*s' % (n, x)``."""
    if "%" not in template:
        return
    starred = False
    for match in _PRINTF.finditer(template):
        for number in match.group(1, 2):
            if number == "*":
                starred = True
            elif number and (len(number) > 7 or int(number) > MAX_STRING):
                raise refuse("a %-format field", int(number[:12]), MAX_STRING)
    if starred:
        values = args if isinstance(args, tuple) else (args,)
        for value in values:
            if type(value) is int and abs(value) > MAX_STRING:
                raise refuse("a %-format field", abs(value), MAX_STRING)


_SPEC_NUMBER = re.compile(r"\d+")


def _check_format_spec(spec: str) -> None:
    for number in _SPEC_NUMBER.findall(spec):
        if len(number) > 7 or int(number) > MAX_STRING:
            raise refuse("a format field", int(number[:12]), MAX_STRING)


class BoundedFormatter(SandboxedFormatter):
    """``str.format`` in the sandbox, refusing a width or precision over ``MAX_STRING``."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_format_spec(format_spec)
        return super().format_field(value, format_spec)


class BoundedEscapeFormatter(BoundedFormatter, EscapeFormatter):
    """``Markup.format``: escaping, and bounded."""


# -- string methods ---------------------------------------------------------------------------


def replaced_length(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(text, str | bytes) or not isinstance(new, str | bytes):
        return 0
    if not isinstance(old, str | bytes) or type(old) is not type(text):
        return len(text)
    haystack: Any = text  # str with str, bytes with bytes (checked above)
    found = len(text) + 1 if not old else haystack.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def joined(separator: Any, items: list[Any]) -> int:
    total = len(separator) * max(len(items) - 1, 0) if isinstance(separator, str | bytes) else 0
    for item in items:
        total += weight(item, MAX_STRING - total + 1)
        if total > MAX_STRING:
            break
    return total


def check_method(
    obj: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Check a call of string method ``name`` on ``obj``; returns the arguments to call with
    (``join`` gets its iterable as a list, counted once)."""
    if name in ("center", "ljust", "rjust", "zfill") and args:
        check_length(int_arg(args[0]), f"{name}()")
    elif name == "expandtabs":
        size = int_arg(args[0] if args else kwargs.get("tabsize", 8))
        tab = "\t" if isinstance(obj, str) else b"\t"
        check_length(len(obj) + obj.count(tab) * size, "expandtabs()")
    elif name == "replace" and len(args) >= 2:
        check_length(replaced_length(obj, *args[:3]), "replace()")
    elif name == "join" and args:
        items = list(args[0])
        check_length(joined(obj, items), "join()")
        return (items,)
    elif name == "translate" and args and isinstance(args[0], Mapping) and isinstance(obj, str):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        check_length(len(obj) * longest, "translate()")
    return args


_GROWING_METHODS = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join", "translate"}
)


def growing_method(obj: Any) -> tuple[Any, str] | None:
    """(the string, method name) when ``obj`` is a bound string method that can grow."""
    if isinstance(obj, types.BuiltinMethodType | types.MethodType):
        owner = getattr(obj, "__self__", None)
        name = getattr(obj, "__name__", "")
        if isinstance(owner, str | bytes | bytearray) and name in _GROWING_METHODS:
            return owner, name
    return None
