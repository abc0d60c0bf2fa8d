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

This package sits beside ``rendering`` and ``workflows`` (which may not import each other) so
that templates and expressions share one set of limits.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from string import Formatter
from typing import Any

from jinja2 import Template
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, soft_str

from remarket_mailer.sandbox.filters import attr_filter, bounded_filters, lipsum
from remarket_mailer.sandbox.limits import (
    MAX_EXPONENT,
    MAX_INT_BITS,
    MAX_ITEMS,
    MAX_OUTPUT,
    MAX_STRING,
    BoundedEscapeFormatter,
    BoundedFormatter,
    GrowthError,
    check_binop,
    check_length,
    check_method,
    growing_method,
    joined,
    refuse,
)

__all__ = [
    "MAX_EXPONENT",
    "MAX_INT_BITS",
    "MAX_ITEMS",
    "MAX_OUTPUT",
    "MAX_STRING",
    "BoundedSandbox",
    "GrowthError",
    "bound_template",
    "join_bounded",
]


# -- concatenation (``~``) and output ---------------------------------------------------------


def _str_join(seq: Iterable[Any]) -> str:
    items = list(seq)
    check_length(joined("", items), "'~'")
    return "".join(map(str, items))


def _markup_join(seq: Iterable[Any]) -> str:
    items = list(seq)
    check_length(joined("", items), "'~'")
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
            raise refuse("the template's output", size, limit)
        parts.append(text)
    return parts[0] if len(parts) == 1 else "".join(parts)


# -- the environment --------------------------------------------------------------------------


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox plus the growth limits of this module."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters.update(bounded_filters(self.filters))
        self.filters["attr"] = attr_filter(self.filters["attr"])
        self.globals["lipsum"] = lipsum

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        method = growing_method(__obj)
        if method is not None:
            args = check_method(method[0], method[1], args, kwargs)
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
            formatter = BoundedEscapeFormatter(self, escape=owner.escape)
        else:
            formatter = BoundedFormatter(self)
        is_format_map = value.__name__ == "format_map"
        str_type = type(owner)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            return str_type(formatter.vformat(owner, args, kwargs))

        return wrapper
