"""Jinja's sandbox with bounded growth: what templates and workflow expressions run in.

Jinja's ``ImmutableSandboxedEnvironment`` keeps templates away from Python internals, from
mutating shared data and from ``range()`` over 100,000 items. It does not stop one call from
building a huge value: ``'a'|center(300000000)``, ``'%300000000s'|format(x)``,
``'x' * 300000000``, ``'a'.ljust(10**9)`` or ``10**10**10`` each allocated hundreds of MB (or
ran for minutes) in a worker. Here every operation that can build a value much larger than its
inputs works out the size of its result *before* building it, and raises ``GrowthError`` when
it would exceed:

- ``MAX_STRING`` characters (or bytes) for a string,
- ``MAX_ITEMS`` items for a list or tuple,
- ``MAX_INT_BITS`` bits for an integer (``**`` and ``*``).

Covered: the operators ``*``, ``**``, ``+``, ``%`` (printf) and ``~``; the filters ``center``,
``format``, ``indent``, ``wordwrap``, ``replace``, ``join``, ``truncate``, ``batch``,
``slice``, ``sum`` and ``tojson``; the string methods ``center``, ``ljust``, ``rjust``,
``zfill``, ``expandtabs``, ``replace``, ``join``, ``translate``, ``format`` and
``format_map`` (however the method is reached: ``s.ljust``, ``s['ljust']``, ``s|attr('ljust')``);
the ``lipsum`` global. The renderer also caps the size of each rendered part
(``join_bounded``). Not covered: CPU time (a loop over ``range(100000)`` inside another runs
for a long time) and the ``repr`` of nested list literals; run workers under a memory limit too.

This module sits beside ``rendering`` and ``workflows`` (which may not import each other) so
that templates and expressions share one set of limits.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from string import Formatter
from typing import Any

from jinja2 import Environment, Template, pass_environment, pass_eval_context
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum
from markupsafe import EscapeFormatter, Markup, soft_str

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


def _refuse(what: str, size: int, limit: int, unit: str = "characters") -> GrowthError:
    return GrowthError(f"{what} would build {size:,} {unit}; the sandbox allows {limit:,}")


def check_length(size: int, what: str) -> None:
    """Raise GrowthError when a string of ``size`` characters is over ``MAX_STRING``."""
    if size > MAX_STRING:
        raise _refuse(what, size, MAX_STRING)


def _weight(value: Any, budget: int = MAX_STRING) -> int:
    """About how many characters ``str(value)`` writes, counted without building it; stops
    counting once over ``budget`` (so a list of a million shared strings costs little)."""
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    if isinstance(value, list | tuple | set | frozenset | dict):
        total = 2
        for item in value.items() if isinstance(value, dict) else value:
            total += _weight(item, budget - total) + 2
            if total > budget:
                break
        return total
    return 8  # numbers, None, dates...: small


def _int_arg(value: Any) -> int:
    return value if isinstance(value, int) else 0


# -- operators --------------------------------------------------------------------------------


def _check_repeat(seq: Any, count: Any) -> None:
    if not isinstance(count, int) or count <= 0:
        return
    if isinstance(seq, str | bytes | bytearray):
        check_length(len(seq) * count, "repeating a string")
    elif isinstance(seq, list | tuple):
        if len(seq) * count > MAX_ITEMS:
            raise _refuse("repeating a list", len(seq) * count, MAX_ITEMS, "items")
        check_length(_weight(seq) * count, "repeating a list")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        _check_repeat(left, right)
        _check_repeat(right, left)
        if type(left) is int and type(right) is int:
            bits = left.bit_length() + right.bit_length()
            if bits > MAX_INT_BITS:
                raise _refuse("multiplying", bits, MAX_INT_BITS, "bits")
    elif operator == "**":
        if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise GrowthError(f"exponent too large (the sandbox allows up to {MAX_EXPONENT})")
        if type(left) is int and type(right) is int and right > 0:
            bits = left.bit_length() * right
            if bits > MAX_INT_BITS:
                raise _refuse("a power", bits, MAX_INT_BITS, "bits")
    elif operator == "+":
        if isinstance(left, str | bytes | bytearray) and isinstance(right, str | bytes):
            check_length(len(left) + len(right), "joining two strings")
        elif (
            isinstance(left, list | tuple)
            and isinstance(right, list | tuple)
            and len(left) + len(right) > MAX_ITEMS
        ):
            raise _refuse("joining two lists", len(left) + len(right), MAX_ITEMS, "items")
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
                raise _refuse("a %-format field", int(number[:12]), MAX_STRING)
    if starred:
        values = args if isinstance(args, tuple) else (args,)
        for value in values:
            if type(value) is int and abs(value) > MAX_STRING:
                raise _refuse("a %-format field", abs(value), MAX_STRING)


_SPEC_NUMBER = re.compile(r"\d+")


def _check_format_spec(spec: str) -> None:
    for number in _SPEC_NUMBER.findall(spec):
        if len(number) > 7 or int(number) > MAX_STRING:
            raise _refuse("a format field", int(number[:12]), MAX_STRING)


class _BoundedFormatter(SandboxedFormatter):
    """``str.format`` in the sandbox, refusing a width or precision over ``MAX_STRING``."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_format_spec(format_spec)
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    """``Markup.format``: escaping, and bounded."""


# -- string methods ---------------------------------------------------------------------------


def _replaced_length(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(text, str | bytes) or not isinstance(new, str | bytes):
        return 0
    if not isinstance(old, str | bytes) or type(old) is not type(text):
        return len(text)
    haystack: Any = text  # str with str, bytes with bytes (checked above)
    found = len(text) + 1 if not old else haystack.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _joined(separator: Any, items: list[Any]) -> int:
    total = len(separator) * max(len(items) - 1, 0) if isinstance(separator, str | bytes) else 0
    for item in items:
        total += _weight(item, MAX_STRING - total + 1)
        if total > MAX_STRING:
            break
    return total


def _check_method(
    obj: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Check a call of string method ``name`` on ``obj``; returns the arguments to call with
    (``join`` gets its iterable as a list, counted once)."""
    if name in ("center", "ljust", "rjust", "zfill") and args:
        check_length(_int_arg(args[0]), f"{name}()")
    elif name == "expandtabs":
        size = _int_arg(args[0] if args else kwargs.get("tabsize", 8))
        tab = "\t" if isinstance(obj, str) else b"\t"
        check_length(len(obj) + obj.count(tab) * size, "expandtabs()")
    elif name == "replace" and len(args) >= 2:
        check_length(_replaced_length(obj, *args[:3]), "replace()")
    elif name == "join" and args:
        items = list(args[0])
        check_length(_joined(obj, items), "join()")
        return (items,)
    elif name == "translate" and args and isinstance(args[0], Mapping) and isinstance(obj, str):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        check_length(len(obj) * longest, "translate()")
    return args


_GROWING_METHODS = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join", "translate"}
)


def _growing_method(obj: Any) -> tuple[Any, str] | None:
    """(the string, method name) when ``obj`` is a bound string method that can grow."""
    if isinstance(obj, types.BuiltinMethodType | types.MethodType):
        owner = getattr(obj, "__self__", None)
        name = getattr(obj, "__name__", "")
        if isinstance(owner, str | bytes | bytearray) and name in _GROWING_METHODS:
            return owner, name
    return None


# -- filters ----------------------------------------------------------------------------------


def _bounded_filters(original: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters that can grow a value, each checking the size of its result first.
    Results are returned as the original filter made them (Markup stays Markup)."""
    center, format_, indent = original["center"], original["format"], original["indent"]
    wordwrap, replace, join = original["wordwrap"], original["replace"], original["join"]
    truncate, batch, slice_ = original["truncate"], original["batch"], original["slice"]
    sum_, tojson = original["sum"], original["tojson"]

    def center_bounded(value: Any, width: int = 80) -> Any:
        check_length(_int_arg(width), "center")
        return center(value, width)

    def format_bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
        check_printf(soft_str(value), kwargs or args)
        return format_(value, *args, **kwargs)

    def indent_bounded(
        s: Any, width: int | str = 4, first: bool = False, blank: bool = False
    ) -> Any:
        text = soft_str(s)
        per_line = len(width) if isinstance(width, str) else _int_arg(width)
        check_length(len(text) + per_line * (text.count("\n") + 1), "indent")
        return indent(s, width, first, blank)

    @pass_environment
    def wordwrap_bounded(
        environment: Environment,
        s: Any,
        width: int = 79,
        break_long_words: bool = True,
        wrapstring: str | None = None,
        break_on_hyphens: bool = True,
    ) -> Any:
        separator = len(wrapstring) if isinstance(wrapstring, str) else 2
        check_length(len(soft_str(s)) * (1 + separator), "wordwrap")
        return wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)

    @pass_eval_context
    def replace_bounded(
        eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None
    ) -> Any:
        size = _replaced_length(soft_str(s), soft_str(old), soft_str(new), count)
        check_length(size, "replace")
        return replace(eval_ctx, s, old, new, count)

    @pass_eval_context
    def join_bounded_filter(
        eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: Any = None
    ) -> Any:
        items = list(value)
        if attribute is None:
            check_length(_joined(d, items), "join")
        return join(eval_ctx, items, d, attribute)

    @pass_environment
    def truncate_bounded(
        environment: Environment,
        s: Any,
        length: int = 255,
        killwords: bool = False,
        end: str = "...",
        leeway: int | None = None,
    ) -> Any:
        # Truncating never makes a string longer than itself plus ``end``.
        check_length(len(soft_str(end)), "truncate")
        return truncate(environment, s, length, killwords, end, leeway)

    def batch_bounded(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Any:
        if fill_with is not None and _int_arg(linecount) > MAX_ITEMS:
            raise _refuse("batch", linecount, MAX_ITEMS, "items")
        return batch(value, linecount, fill_with)

    @pass_eval_context
    def slice_bounded(
        eval_ctx: EvalContext, value: Iterable[Any], slices: int, fill_with: Any = None
    ) -> Any:
        if _int_arg(slices) > MAX_ITEMS:
            raise _refuse("slice", slices, MAX_ITEMS, "items")
        return slice_(eval_ctx, value, slices, fill_with)

    @pass_environment
    def sum_bounded(
        environment: Environment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
    ) -> Any:
        items = list(iterable)
        if isinstance(start, list | tuple) and attribute is None:
            size = len(start) + sum(len(x) for x in items if isinstance(x, list | tuple))
            if size > MAX_ITEMS:
                raise _refuse("sum", size, MAX_ITEMS, "items")
        return sum_(environment, items, attribute, start)

    @pass_eval_context
    def tojson_bounded(eval_ctx: EvalContext, value: Any, indent: int | None = None) -> Any:
        if _int_arg(indent) > 64:
            raise GrowthError("tojson indent too large (the sandbox allows up to 64)")
        return tojson(eval_ctx, value, indent)

    return {
        "center": center_bounded,
        "format": format_bounded,
        "indent": indent_bounded,
        "wordwrap": wordwrap_bounded,
        "replace": replace_bounded,
        "join": join_bounded_filter,
        "truncate": truncate_bounded,
        "batch": batch_bounded,
        "slice": slice_bounded,
        "sum": sum_bounded,
        "tojson": tojson_bounded,
    }


def _attr_filter(attr: Callable[..., Any]) -> Callable[..., Any]:
    """``attr`` that fails on an Undefined with *its* reason: in
    ``''|attr('__class__')|attr('__mro__')`` that the first access is unsafe, not that an
    Undefined object has no ``__mro__``."""

    @pass_environment
    def attr_or_fail(environment: Environment, obj: Any, name: str) -> Any:
        if isinstance(obj, Undefined):
            obj._fail_with_undefined_error()
        return attr(environment, obj, name)

    return attr_or_fail


def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    """Jinja's ``lipsum`` with at most 100 paragraphs of at most 1,000 words."""
    if _int_arg(n) > 100 or _int_arg(max) > 1000 or _int_arg(min) > 1000:
        raise GrowthError("lipsum(): the sandbox allows 100 paragraphs of 1,000 words")
    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))


# -- concatenation (``~``) and output ---------------------------------------------------------


def _str_join(seq: Iterable[Any]) -> str:
    items = list(seq)
    check_length(_joined("", items), "'~'")
    return "".join(map(str, items))


def _markup_join(seq: Iterable[Any]) -> str:
    items = list(seq)
    check_length(_joined("", items), "'~'")
    buffer = [soft_str(x) for x in items]
    if any(hasattr(x, "__html__") for x in buffer):
        return Markup("").join(buffer)
    return "".join(buffer)


def bound_template(template: Template) -> Template:
    """Make ``~`` in ``template``'s generated code check the size of what it joins.

    The compiler writes ``a ~ b`` as a call of the module-level ``str_join`` (or
    ``markup_join``) of the generated code, which no environment hook sees.
    """
    namespace = template.root_render_func.__globals__
    namespace["str_join"] = _str_join
    namespace["markup_join"] = _markup_join
    return template


def join_bounded(chunks: Iterator[str], limit: int = MAX_OUTPUT) -> str:
    """``"".join(chunks)``, raising GrowthError as soon as the text is over ``limit``
    characters (a loop in a template can emit without end). Joins in slices, in C."""
    parts: list[str] = []
    size = 0
    while True:
        batch = list(islice(chunks, 64))
        if not batch:
            break
        text = "".join(batch)
        size += len(text)
        if size > limit:
            raise _refuse("the template's output", size, limit)
        parts.append(text)
    return parts[0] if len(parts) == 1 else "".join(parts)


# -- the environment --------------------------------------------------------------------------


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox plus the growth limits of this module."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters.update(_bounded_filters(self.filters))
        self.filters["attr"] = _attr_filter(self.filters["attr"])
        self.globals["lipsum"] = lipsum

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        method = _growing_method(__obj)
        if method is not None:
            args = _check_method(method[0], method[1], args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # Jinja's own wrapper, with a formatter that refuses huge widths and precisions.
        if not isinstance(
            value, types.MethodType | types.BuiltinMethodType
        ) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        owner: Any = value.__self__
        if not isinstance(owner, str):
            return None
        formatter: Formatter
        if isinstance(owner, Markup):
            formatter = _BoundedEscapeFormatter(self, escape=owner.escape)
        else:
            formatter = _BoundedFormatter(self)
        is_format_map = value.__name__ == "format_map"
        str_type = type(owner)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            return str_type(formatter.vformat(owner, args, kwargs))

        return wrapper
